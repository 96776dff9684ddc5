from django.core.management.base import BaseCommand, CommandError

from generation.engine.gguf_tokenizer import write_tokenizer_json


class Command(BaseCommand):
    help = "Write an exact tokenizer.json for a GGUF model, built from the GGUF's own metadata."

    def add_arguments(self, parser):
        parser.add_argument("gguf_path")
        parser.add_argument("output_json")

    def handle(self, *args, gguf_path, output_json, **options):
        try:
            vocabulary = write_tokenizer_json(gguf_path, output_json)
        except (OSError, ValueError, KeyError) as exc:  # unreadable, not a whole GGUF, a tokenizer not built
            raise CommandError(f"Cannot build a tokenizer from {gguf_path}: {exc}") from exc
        self.stdout.write(f"Wrote {output_json} ({len(vocabulary.tokens)} tokens)")
