from django.conf import settings
from django.core.management.base import BaseCommand

# Daphne's command line, with the request body limit applied while bodies are received.
from inference_service.http_protocol import CommandLineInterface


class Command(BaseCommand):
    help = "Run the service under Daphne on LLM_INFERENCE_PORT (TLS when LLM_TLS_CERT_FILE is set)."

    def handle(self, *args, **options):
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
        CommandLineInterface().run([*arguments, "inference_service.asgi:application"])
