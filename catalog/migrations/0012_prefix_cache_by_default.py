"""The bundled models reuse a conversation's history: the engine's prefix cache on, with 4
sequences (a 600-token chat's second turn began in 0.1 s instead of 3.6 s on 2 cores). Its
memory, which mistral.rs 0.9.5 does not bound, is bounded by LLM_ENGINE_WORKER_MAX_RSS_MB, on
by default: a worker past it is replaced without a gap. An entry whose prefix cache an admin
has set is left as it is."""

import django.core.validators
from django.db import migrations, models

BUNDLED_PREFIX_CACHE_N = 4


def prefix_cache_on(apps, schema_editor):
    ModelEntry = apps.get_model("catalog", "ModelEntry")
    ModelEntry.objects.filter(source="bundled", prefix_cache_n=0).update(prefix_cache_n=BUNDLED_PREFIX_CACHE_N)


def prefix_cache_off(apps, schema_editor):
    ModelEntry = apps.get_model("catalog", "ModelEntry")
    ModelEntry.objects.filter(source="bundled", prefix_cache_n=BUNDLED_PREFIX_CACHE_N).update(prefix_cache_n=0)


class Migration(migrations.Migration):
    dependencies = [("catalog", "0011_kv_cache_settings")]

    operations = [
        migrations.AlterField(
            model_name="modelentry",
            name="prefix_cache_n",
            field=models.PositiveSmallIntegerField(
                default=0,
                help_text="Sequences whose KV cache the engine keeps to reuse for prompts with the same prefix, "
                "such as a chat's earlier turns: on CPU, a 600-token chat's second turn began in 0.1 s instead of "
                "3.6 s. The bundled models use 4; 0 turns it off, the default for a new entry. mistral.rs 0.9.5 "
                "does not bound its memory (about 10-18 MB more per generation): a worker past "
                "LLM_ENGINE_WORKER_MAX_RSS_MB is replaced, its replacement loaded while it serves.",
                validators=[django.core.validators.MaxValueValidator(64)],
                verbose_name="prefix cache size",
            ),
        ),
        migrations.RunPython(prefix_cache_on, prefix_cache_off),
    ]
