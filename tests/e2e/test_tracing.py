"""OpenTelemetry traces: the ASGI application in-process with the real model, spans read from
an in-memory exporter, and OTLP export checked against a local receiver."""

import http.server
import threading

import httpx
import pytest
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.test import override_settings
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from generation.core.limiter import ConcurrencyLimiter
from generation.lifecycle.runtime import Runtime, install
from inference_service.telemetry import configure_tracing, uninstrument_django

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

MODEL = "google/gemma-3-270m"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class OtlpReceiver(http.server.ThreadingHTTPServer):
    """Takes OTLP/HTTP export requests and keeps them, as a collector would."""

    def __init__(self):
        self.requests: list[tuple[str, str, bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, self.headers["Content-Type"], body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def traced(engine_cache):
    """Tracing configured as with OTEL_EXPORTER_OTLP_ENDPOINT set, plus an in-memory exporter."""
    receiver = OtlpReceiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with override_settings(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url):
        configure_tracing()
    provider = trace.get_tracer_provider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    # The real engine and model, loaded once for the session (the conftest fixture).
    limiter = ConcurrencyLimiter(max_active=4, max_queued=16, timeout=30)
    previous = install(Runtime(engine_cache=engine_cache, limiter=limiter))
    app = ASGIHandler()  # built after tracing was set up, as asgi.py does
    yield app, memory, receiver, provider
    install(previous)
    uninstrument_django()
    provider.shutdown()  # flushes to the receiver while it still listens
    receiver.shutdown()


@pytest.fixture
def call(traced):
    app, memory, _, _ = traced
    memory.clear()

    async def call(path: str, body: dict, **headers):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=120) as client:
            return await client.post(path, json=body, headers=headers)

    return call


def spans_by_kind(memory) -> dict:
    spans = {}
    for span in memory.get_finished_spans():
        spans.setdefault(span.kind, []).append(span)
    return spans


async def test_a_generation_span_under_the_request_span(call, traced):
    _, memory, _, _ = traced
    response = await call(
        "/api/generate",
        {"prompt": "The capital of France is", "max_tokens": 3, "temperature": 0},
        traceparent=f"00-{TRACE_ID}-00f067aa0ba902b7-01",  # the caller's trace continues here
    )
    body = response.json()
    spans = spans_by_kind(memory)
    (request_span,) = spans[SpanKind.SERVER]
    (generation_span,) = spans[SpanKind.INTERNAL]

    assert request_span.name == "POST api/generate"
    assert format(request_span.context.trace_id, "032x") == TRACE_ID
    assert request_span.attributes["http.status_code"] == 200
    assert generation_span.parent.span_id == request_span.context.span_id
    assert generation_span.context.trace_id == request_span.context.trace_id
    assert generation_span.name == f"text_completion {MODEL}"
    attributes = generation_span.attributes
    assert attributes["gen_ai.operation.name"] == "text_completion"
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.response.model"] == MODEL
    assert attributes["gen_ai.request.max_tokens"] == 3
    assert attributes["gen_ai.request.temperature"] == 0
    assert attributes["gen_ai.usage.input_tokens"] == body["prompt_tokens"] == 6
    assert attributes["gen_ai.usage.output_tokens"] == body["tokens_generated"] == 3
    assert attributes["gen_ai.response.finish_reasons"] == (body["finish_reason"],)
    assert attributes["llm.endpoint"] == "generate"
    assert generation_span.status.status_code != StatusCode.ERROR


async def test_chat_spans_name_the_chat_operation(call, traced):
    _, memory, _, _ = traced
    response = await call("/api/chat", {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    assert response.status_code == 200
    (generation_span,) = spans_by_kind(memory)[SpanKind.INTERNAL]
    assert generation_span.name == f"chat {MODEL}"
    assert generation_span.attributes["gen_ai.operation.name"] == "chat"
    assert generation_span.attributes["gen_ai.response.finish_reasons"] == (response.json()["finish_reason"],)


async def test_a_refused_request_has_a_request_span_and_no_generation_span(call, traced):
    _, memory, _, _ = traced
    response = await call("/api/generate", {"prompt": "x", "model": "no/such-model"})
    assert response.status_code == 404
    spans = spans_by_kind(memory)
    assert SpanKind.INTERNAL not in spans
    (request_span,) = spans[SpanKind.SERVER]
    assert request_span.attributes["http.status_code"] == 404


async def test_probes_and_scrapes_are_not_traced(call, traced):
    app, memory, _, _ = traced
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        assert (await client.get("/health/live")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
    assert memory.get_finished_spans() == ()


async def test_spans_are_exported_over_otlp(call, traced):
    _, _, receiver, provider = traced
    receiver.requests.clear()
    assert (await call("/api/generate", {"prompt": "Hello", "max_tokens": 2})).status_code == 200
    assert provider.force_flush(timeout_millis=10_000)
    assert receiver.requests, "nothing was exported"
    names = set()
    for path, content_type, body in receiver.requests:
        assert path == "/v1/traces"
        assert content_type == "application/x-protobuf"
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
            assert service == settings.OTEL_SERVICE_NAME
            names |= {span.name for scope in resource_spans.scope_spans for span in scope.spans}
    assert {"POST api/generate", f"text_completion {MODEL}"} <= names
