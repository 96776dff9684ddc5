"""Aliases: short names for catalog entries, which clients may send instead of the id
(`gemma3` and `smollm2` for the bundled models: ids with a "/" break the OpenAI Agents
SDK's provider prefixes)."""

from django.db import migrations, models

BUNDLED_ALIASES = {"google/gemma-3-270m": ["gemma3"], "HuggingFaceTB/SmolLM2-135M-Instruct": ["smollm2"]}


def name_the_bundled_models(apps, schema_editor):
    ModelEntry = apps.get_model("catalog", "ModelEntry")
    taken = {name for entry in ModelEntry.objects.all() for name in [entry.model_id, *entry.aliases]}
    for model_id, aliases in BUNDLED_ALIASES.items():
        if not taken & set(aliases):  # an entry of this installation's may already use the name
            ModelEntry.objects.filter(model_id=model_id, aliases=[]).update(aliases=aliases)


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0008_file_name_inside_the_location"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelentry",
            name="aliases",
            field=models.JSONField(
                blank=True, default=list,
                help_text="Short names clients may send instead of the id, e.g. gemma3: one per line; letters, "
                "digits, and . _ : - (no /). Each unique among every entry's ids and aliases. API key and "
                "LLM_ALLOWED_MODELS lists still name the id.",
            ),
        ),
        migrations.RunPython(name_the_bundled_models, migrations.RunPython.noop),
    ]
