"""Traces across the engine boundary: the OTLP exporter (the web process's and each worker's),
the trace context that travels with a Generate message, and the spans of a generation's
phases in its worker process.

The web process sends the W3C `traceparent` of the request's span with each Generate; a
worker loaded with an exporter (protocol.Load's `trace_export`, from the web process's own
settings) then records three spans under it: queue (from the message's arrival to the
prompt's submission to the engine: counting its tokens, waiting at the prefill gate),
prefill (to the first token) and decode (to the end). With tracing off, no traceparent is
sent and a worker has no exporter: no span is made, and nothing is done per token.
"""

from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from generation.engine.types import Finished

PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class TraceExport:
    """Where spans go: OTLP over HTTP to `<endpoint>/v1/traces`, as service `service_name`."""

    endpoint: str
    service_name: str


def otlp_tracer_provider(export: TraceExport):
    """A tracer provider that exports in batches, off the threads that make the spans."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": export.service_name}))
    endpoint = export.endpoint.rstrip("/") + "/v1/traces"  # as the OTLP spec appends it
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def traceparent(context) -> str | None:
    """The W3C traceparent of the span current in `context`; None where there is none (tracing off)."""
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=context)
    return carrier.get("traceparent")


class GenerationPhases:
    """One generation's spans in its worker, queue then prefill then decode, each a child of the
    span that `traceparent` names. Made when the worker receives the Generate message."""

    def __init__(self, tracer: trace.Tracer, traceparent: str, *, model_id: str):
        self._tracer = tracer
        self._parent = PROPAGATOR.extract({"traceparent": traceparent})
        self._model_id = model_id
        self._span = self._start("queue")

    def _start(self, phase: str) -> trace.Span:
        return self._tracer.start_span(
            f"{phase} {self._model_id}", context=self._parent, kind=SpanKind.INTERNAL,
            attributes={"gen_ai.request.model": self._model_id, "llm.engine.phase": phase},
        )

    def admitted(self, prompt_tokens: int) -> None:
        self._span.set_attribute("gen_ai.usage.input_tokens", prompt_tokens)

    def submitted(self) -> None:
        """The prompt goes to the engine: prefill starts."""
        self._span.end()
        self._span = self._start("prefill")

    def first_token(self) -> None:
        """The engine's first chunk came: decode starts."""
        self._span.end()
        self._span = self._start("decode")

    def finished(self, event: Finished) -> None:
        """The engine's last chunk came: decode ends, before the web process hears of it."""
        self._span.set_attributes({
            "gen_ai.usage.output_tokens": event.completion_tokens,
            "gen_ai.response.finish_reasons": [event.finish_reason],
        })
        self._span.end()
        self._span = None

    def end(self, *, error: str | None = None) -> None:
        """The generation is over: if it did not finish, it failed (`error`) or was cancelled."""
        if self._span is None:
            return
        if error is not None:
            self._span.set_status(Status(StatusCode.ERROR, error))
        else:
            self._span.set_attribute("error.type", "cancelled")
        self._span.end()
        self._span = None
