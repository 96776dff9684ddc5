"""Without an OTLP endpoint, no tracing is installed (the spans of real generations:
tests/e2e/test_tracing.py)."""

import pytest
from django.conf import settings
from django.test import override_settings
from opentelemetry import trace

from inference_service.telemetry import configure_tracing

pytestmark = pytest.mark.django_db


def test_without_an_otlp_endpoint_nothing_is_installed():
    middleware = list(settings.MIDDLEWARE)
    with override_settings(OTEL_EXPORTER_OTLP_ENDPOINT=""):
        configure_tracing()
    assert settings.MIDDLEWARE == middleware
    # The generation spans go to the API's no-op tracer: nothing is recorded.
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert not trace.get_tracer("generation").start_span("x").is_recording()
