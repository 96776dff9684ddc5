from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0004_bundled_smollm2'),
    ]

    operations = [
        migrations.AlterField(
            model_name='modelentry',
            name='chat_template',
            field=models.TextField(blank=True, help_text="Jinja chat template (Hugging Face variables: messages, bos_token, eos_token, add_generation_prompt). Empty: the GGUF's own template (tokenizer.chat_template, with its BOS and EOS tokens); a chat to a model whose file has none is refused."),
        ),
    ]
