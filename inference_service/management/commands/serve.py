import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from generation.lifecycle.runtime import Runtime, install

# Daphne's command line, with what its HTTP protocol refuses before Django: a body over the
# limit, a client too slow to send its request, a connection past LLM_MAX_CONNECTIONS.
from inference_service.http_protocol import CommandLineInterface

logger = logging.getLogger(__name__)


def refuse_pending_migrations() -> None:
    """Stop with a clear message while migrations are pending: they are applied once, by
    `manage.py migrate` (a Job in Kubernetes), never by every server at its start. An
    unreachable database is no reason to stop: readiness reports it, and heals."""
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        logger.warning("migrations not checked: the database is unreachable (%s)", exc)
        return
    finally:
        connection.close()
    if pending:
        names = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in pending[:5])
        raise CommandError(
            f"{len(pending)} migrations are not applied ({names}...). Run `python manage.py migrate` "
            "first (in Kubernetes, the migration Job)."
        )


class Command(BaseCommand):
    help = "Run the service under Daphne on LLM_INFERENCE_PORT (TLS when LLM_TLS_CERT_FILE is set)."

    def handle(self, *args, **options):
        refuse_pending_migrations()
        if settings.LLM_TLS_CERT_FILE:
            # Daphne's Twisted endpoint syntax; colons in the paths must be escaped.
            endpoint = "ssl:port={port}:interface={host}:privateKey={key}:certKey={cert}".format(
                port=settings.LLM_INFERENCE_PORT,
                host=settings.LLM_BIND_ADDRESS,
                key=settings.LLM_TLS_KEY_FILE.replace(":", r"\:"),
                cert=settings.LLM_TLS_CERT_FILE.replace(":", r"\:"),
            )
            arguments = ["-e", endpoint]
        else:
            arguments = ["-b", settings.LLM_BIND_ADDRESS, "-p", str(settings.LLM_INFERENCE_PORT)]
        if settings.LLM_PROXY_HEADERS:
            arguments.append("--proxy-headers")
        # No Daphne access log (plain text on stdout): inference_service.request_id logs
        # each request through Django's logging, with its request id, as JSON or text.
        arguments += ["-v", "0"]
        # This process's state: loaded models, start-up loads, load state heartbeat, the
        # listener of other processes. Started here, before Daphne serves, not at import.
        runtime = Runtime.from_settings(serving=True)
        install(runtime)
        runtime.start()
        try:
            CommandLineInterface().run([*arguments, "inference_service.asgi:application"])
        finally:
            runtime.stop()
