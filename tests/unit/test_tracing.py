"""Without an OTLP endpoint, no tracing is installed; the request's trace context travels with the
Generate message and parents the worker's phase spans (the spans of real generations, the
worker's among them: tests/e2e/test_tracing.py)."""

import pickle

import pytest
from django.conf import settings
from django.test import override_settings
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags

from catalog.sampling import SamplingParams
from generation.engine import protocol
from generation.engine.tracing import GenerationPhases, traceparent
from generation.engine.types import Finished
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


# --- the trace context across the engine boundary ---------------------------------------------


TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


def request_context():
    """What the request's span makes current: a sampled span of a known trace."""
    span = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)))
    return trace.set_span_in_context(span)


def test_the_request_span_travels_with_generate_and_parents_the_workers_phase_spans():
    sent = protocol.Generate(1, "prompt", SamplingParams(max_tokens=2), False, traceparent(request_context()))
    received = pickle.loads(pickle.dumps(sent))  # as the channel frames it (multiprocessing.connection)
    assert received.traceparent == f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"

    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    phases = GenerationPhases(provider.get_tracer("worker"), received.traceparent, model_id="m")
    phases.admitted(6)
    phases.submitted()
    phases.first_token()
    phases.finished(Finished(finish_reason="length", prompt_tokens=6, completion_tokens=3))
    phases.end()  # the worker's, once the engine let the generation go: it had finished

    queue, prefill, decode = memory.get_finished_spans()
    assert [span.name for span in (queue, prefill, decode)] == ["queue m", "prefill m", "decode m"]
    for span in (queue, prefill, decode):
        assert span.context.trace_id == TRACE_ID
        assert span.parent.span_id == SPAN_ID
    assert queue.end_time <= prefill.start_time and prefill.end_time <= decode.start_time
    assert queue.attributes["gen_ai.usage.input_tokens"] == 6
    assert decode.attributes["gen_ai.usage.output_tokens"] == 3
    assert decode.attributes["gen_ai.response.finish_reasons"] == ("length",)


def test_a_failed_or_cancelled_generation_marks_the_phase_it_ended_in():
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("worker")
    failed = GenerationPhases(tracer, traceparent(request_context()), model_id="m")
    failed.end(error="The prompt is too long")
    cancelled = GenerationPhases(tracer, traceparent(request_context()), model_id="m")
    cancelled.submitted()
    cancelled.first_token()
    cancelled.end()
    queue, *_, decode = memory.get_finished_spans()
    assert (queue.name, queue.status.status_code, queue.status.description) == (
        "queue m", StatusCode.ERROR, "The prompt is too long")
    assert (decode.name, decode.attributes["error.type"]) == ("decode m", "cancelled")


def test_untraced_requests_send_no_trace_context():
    assert traceparent(otel_context.Context()) is None  # tracing off: no span is current


@pytest.mark.django_db(transaction=True)  # the contract tests' database (the requests run in other threads)
async def test_the_generation_core_sends_the_request_spans_context_to_the_worker(api, engine):
    token = otel_context.attach(request_context())
    try:
        assert (await api.post("/api/generate", {"prompt": "x"})).status_code == 200
    finally:
        otel_context.detach(token)
    assert (await api.post("/api/generate", {"prompt": "x"})).status_code == 200  # no span current
    traced, untraced = engine.calls
    assert traced.traceparent == f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"
    assert untraced.traceparent is None
