"""Paged attention's KV-cache memory and block size as catalog engine settings (GPU builds of
the engine); empty for every entry: the engine's own sizing, as before."""

from django.db import migrations, models

import catalog.models


class Migration(migrations.Migration):
    dependencies = [("catalog", "0010_smollm2_in_situ_q8_0")]

    operations = [
        migrations.AddField(
            model_name="modelentry",
            name="kv_cache_block_size",
            field=models.PositiveSmallIntegerField(
                blank=True,
                choices=[(8, "8 tokens"), (16, "16 tokens"), (32, "32 tokens")],
                help_text=(
                    "GPU only: tokens per block of the paged KV cache. Empty: the engine's (32)."
                ),
                null=True,
                verbose_name="KV-cache block size",
            ),
        ),
        migrations.AddField(
            model_name="modelentry",
            name="kv_cache_memory",
            field=models.CharField(
                blank=True,
                help_text=(
                    "GPU only (the engine's paged attention; a CPU build leaves it out, with a warning in "
                    'the log). A KV-cache capacity (8GiB, 512MiB, 65536tokens: about 1 GiB per 8k-token '
                    "sequence of a 7-8B model in 16 bits) or the fraction of the GPU's memory for the "
                    'weights and KV cache together (0.45). Set it when models share a GPU: each one is a '
                    "process of its own. Empty: LLM_ENGINE_KV_CACHE_MEMORY, else the engine's own sizing."
                ),
                max_length=20,
                validators=[catalog.models.validate_kv_cache_memory],
                verbose_name="KV-cache memory",
            ),
        ),
    ]
