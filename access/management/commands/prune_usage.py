"""Delete usage rows past LLM_USAGE_RETENTION_DAYS (the service also does so as each day's first rows are made)."""

from django.core.management.base import BaseCommand

from access.services import delete_expired_usage


class Command(BaseCommand):
    help = "Delete the usage rows of days past LLM_USAGE_RETENTION_DAYS (0: keep all)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, help="Keep this many days instead of the setting's.")

    def handle(self, *args, days=None, **options):
        deleted = delete_expired_usage(retention_days=days)
        self.stdout.write(f"Deleted {deleted} usage row(s).")
