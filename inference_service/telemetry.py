"""OpenTelemetry traces: a span per HTTP request (opentelemetry-instrumentation-django) and a
span per generation (generation.core.service), exported over OTLP; the engine workers export
the spans of each generation's phases the same way (generation.engine.tracing).

Tracing is set up only when OTEL_EXPORTER_OTLP_ENDPOINT is set. Otherwise nothing is
installed: no middleware runs, and the generation spans go to OpenTelemetry's no-op
tracer, which costs a function call and records nothing. Spans go to
`<OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces` (OTLP over HTTP, protobuf) with the service
name OTEL_SERVICE_NAME.
"""

from django.conf import settings
from opentelemetry import trace
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.instrumentation.django.middleware.otel_middleware import _DjangoMiddleware

from generation.engine.tracing import TraceExport, otlp_tracer_provider
from inference_service.middleware import EventLoopHooks

LIBRARY_MIDDLEWARE = "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"
ASYNC_MIDDLEWARE = "inference_service.telemetry.AsyncTracingMiddleware"
# Probes and scrapes would flood the traces with spans nobody reads.
UNTRACED_URLS = "health/,metrics"


class AsyncTracingMiddleware(EventLoopHooks, _DjangoMiddleware):
    """The library's request-span middleware, usable in Django's async stack.

    The library's middleware is synchronous only, which would make Django run every
    request through a thread and back. Its hooks do no I/O, so they are called as they
    are from the event loop; the span is then current while the view and the generation
    core run (same task).
    """


def instrument_django(tracer_provider) -> None:
    """Add the request-span middleware (first in MIDDLEWARE) reporting to `tracer_provider`.

    Call before Django builds its request handler (ASGI application or test client).
    """
    DjangoInstrumentor().instrument(tracer_provider=tracer_provider, excluded_urls=UNTRACED_URLS)
    settings.MIDDLEWARE = [ASYNC_MIDDLEWARE if name == LIBRARY_MIDDLEWARE else name for name in settings.MIDDLEWARE]


def uninstrument_django() -> None:
    settings.MIDDLEWARE = [LIBRARY_MIDDLEWARE if name == ASYNC_MIDDLEWARE else name for name in settings.MIDDLEWARE]
    DjangoInstrumentor().uninstrument()


def configure_tracing() -> None:
    """Export traces over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set; else do nothing."""
    if not settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        return
    provider = otlp_tracer_provider(TraceExport(settings.OTEL_EXPORTER_OTLP_ENDPOINT, settings.OTEL_SERVICE_NAME))
    trace.set_tracer_provider(provider)
    instrument_django(provider)
