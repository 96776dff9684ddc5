"""OpenTelemetry traces: the ASGI application in-process with the real model in its worker
process, the web process's spans read from an in-memory exporter, OTLP export (the worker's
spans among it) checked against a local receiver."""

import http.server
import os
import threading
import time
from unittest import mock

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
from generation.engine.cache import EngineCache
from generation.engine.tracing import TraceExport
from generation.lifecycle.runtime import Runtime, install
from inference_service.telemetry import configure_tracing, uninstrument_django

# Transactional: a test's own transaction would hold SQLite's write lock (transaction_mode IMMEDIATE), and
# the request's usage row, written from another thread, would wait out the 20 s busy timeout.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("bundled_entry_in_catalog")]

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
def traced(bundled_config):
    """Tracing configured as with OTEL_EXPORTER_OTLP_ENDPOINT set, plus an in-memory exporter.

    The real model in a worker of this module's own (not the session's engine_cache): a worker
    gets its exporter when it starts, as Runtime.from_settings gives it the endpoint.
    """
    receiver = OtlpReceiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with override_settings(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url):
        configure_tracing()
    provider = trace.get_tracer_provider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    cache = EngineCache(cache_dir=settings.LLM_MODEL_CACHE_DIR, max_loaded=1,
                        trace_export=TraceExport(receiver.url, settings.OTEL_SERVICE_NAME))
    # The worker inherits the exporter's OTEL_* settings: a batch every 0.1 s instead of 5 s.
    with mock.patch.dict(os.environ, OTEL_BSP_SCHEDULE_DELAY="100"):
        cache.load(bundled_config)
    limiter = ConcurrencyLimiter(max_active=4, max_queued=16, timeout=30)
    previous = install(Runtime(engine_cache=cache, limiter=limiter))
    app = ASGIHandler()  # built after tracing was set up, as asgi.py does
    yield app, memory, receiver, provider
    install(previous)
    cache.unload(MODEL)  # its process ends: the memory is given back
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


def exported_spans(receiver: OtlpReceiver) -> list[tuple[str, object]]:
    """(service name, span) of every span the receiver got, from any process."""
    spans = []
    for _, _, body in list(receiver.requests):
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
            spans += [(service, span) for scope in resource_spans.scope_spans for span in scope.spans]
    return spans


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
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 0  # the prefix cache is off
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


async def test_the_engine_worker_traces_queue_prefill_and_decode_under_the_request_span(call, traced):
    _, memory, receiver, _ = traced
    receiver.requests.clear()
    response = await call(
        "/api/generate",
        {"prompt": "The capital of France is", "max_tokens": 3, "temperature": 0},
        traceparent=f"00-{TRACE_ID}-00f067aa0ba902b7-01",
    )
    assert response.status_code == 200
    (request_span,) = spans_by_kind(memory)[SpanKind.SERVER]
    phases = {}
    deadline = time.monotonic() + 30  # the worker exports in batches, from its own process
    while len(phases) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        phases = {span.name.split()[0]: (service, span) for service, span in exported_spans(receiver)
                  if span.name.endswith(MODEL) and span.name.split()[0] in ("queue", "prefill", "decode")}
    assert set(phases) == {"queue", "prefill", "decode"}, "the worker's spans did not arrive"
    for service, span in phases.values():
        assert service == settings.OTEL_SERVICE_NAME
        assert span.trace_id.hex() == TRACE_ID
        assert int.from_bytes(span.parent_span_id, "big") == request_span.context.span_id
    (_, queue), (_, prefill), (_, decode) = phases["queue"], phases["prefill"], phases["decode"]
    assert queue.end_time_unix_nano <= prefill.start_time_unix_nano
    assert prefill.end_time_unix_nano <= decode.start_time_unix_nano
    assert request_span.start_time <= queue.start_time_unix_nano and decode.end_time_unix_nano <= request_span.end_time
    attributes = {name: {a.key: a.value for a in span.attributes} for name, (_, span) in phases.items()}
    assert attributes["queue"]["gen_ai.usage.input_tokens"].int_value == response.json()["prompt_tokens"]
    assert attributes["decode"]["gen_ai.usage.output_tokens"].int_value == response.json()["tokens_generated"] == 3

