from django.conf import settings
from django.core.management.base import BaseCommand

from catalog.selectors import allowed_models
from generation.engine import model_files


class Command(BaseCommand):
    help = (
        "Prepare the files of every allowed GGUF model: assemble the bundled GGUF and build "
        "the tokenizers, so that the first start of the server does not wait for them."
    )

    def handle(self, *args, **options):
        cache_dir = settings.LLM_MODEL_CACHE_DIR
        for entry in allowed_models():
            if entry.source not in ("bundled", "gguf_file"):
                continue  # hub sources are fetched on first load
            gguf = model_files.local_gguf(
                source=entry.source, location=entry.location, filename=entry.filename, cache_dir=cache_dir
            )
            prepared = model_files.prepare_gguf(gguf, cache_dir)
            self.stdout.write(f"{entry.model_id}: {gguf} (tokenizer {prepared.tokenizer_json})")
