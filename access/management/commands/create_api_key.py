from django.core.management.base import BaseCommand, CommandError

from access.services import create_api_key


class Command(BaseCommand):
    help = "Make an API key and print it (only its hash is stored: this is the one time it is shown)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Who or what uses the key.")
        parser.add_argument(
            "--requests-per-minute", type=int, help="Generation requests per minute (default: no limit)."
        )
        parser.add_argument(
            "--tokens-per-minute", type=int, help="Prompt and generated tokens per minute (default: no limit)."
        )
        parser.add_argument("--model", action="append", default=[], dest="models",
                            help="A model the key may use; repeat for several (default: every served model).")

    def handle(self, *args, name, requests_per_minute, tokens_per_minute, models, **options):
        try:
            _, secret = create_api_key(
                name=name,
                requests_per_minute=requests_per_minute,
                tokens_per_minute=tokens_per_minute,
                model_ids=tuple(models),
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(secret)
