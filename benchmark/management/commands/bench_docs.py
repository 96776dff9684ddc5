from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from benchmark.docs_tables import rewrite_tables


class Command(BaseCommand):
    help = "Rewrite the benchmark tables of docs/performance.md from the runs' JSON (or, with --check, compare)."

    def add_arguments(self, parser):
        parser.add_argument("document", nargs="?", type=Path, default=settings.BASE_DIR / "docs" / "performance.md")
        parser.add_argument("--check", action="store_true", help="fail if a table differs from its run's JSON")

    def handle(self, *args, document: Path, check: bool, **options):
        text = rewrite_tables(document)
        if text == document.read_text():
            self.stdout.write(f"{document}: the tables match their runs")
        elif check:
            raise CommandError(f"{document}: a table differs from its run's JSON; run `manage.py bench_docs`")
        else:
            document.write_text(text)
            self.stdout.write(f"{document}: tables rewritten")
