"""The bundled chat model, SmolLM2 135M Instruct, quantized to Q8_0 in situ at load, as the
bundled Gemma already is: from its file's Q4_1 weights it prefilled 17-18 tokens/s on 2
cores (an 850-token chat waited 44-53 s for its first token), with Q8_0 100-121 tokens/s.
An entry whose quantization an admin has set is left as it is."""

from django.db import migrations

SMOLLM2_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def quantize_in_situ(apps, schema_editor):
    ModelEntry = apps.get_model("catalog", "ModelEntry")
    ModelEntry.objects.filter(model_id=SMOLLM2_MODEL_ID, source="bundled", in_situ_quant="").update(
        in_situ_quant="Q8_0"
    )


def from_the_file(apps, schema_editor):
    ModelEntry = apps.get_model("catalog", "ModelEntry")
    ModelEntry.objects.filter(model_id=SMOLLM2_MODEL_ID, source="bundled", in_situ_quant="Q8_0").update(
        in_situ_quant=""
    )


class Migration(migrations.Migration):
    dependencies = [("catalog", "0009_aliases")]

    operations = [migrations.RunPython(quantize_in_situ, from_the_file)]
