"""What one generation reports while it runs: Prometheus metrics, an OpenTelemetry span
with the GenAI semantic-convention attributes, and its log lines.

generation.core.service drives it (prepare_generation and Generation.events), so every API
gets the same observation under its own `endpoint` name.
"""

import contextlib
import logging
import time

from django.conf import settings
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from catalog.sampling import SamplingParams
from common.errors import ServiceError
from generation.core import metrics
from generation.engine.tracing import traceparent
from generation.engine.types import Finished

logger = logging.getLogger("generation")
tracer = trace.get_tracer("generation")

# The status recorded for a generation whose client went away before it finished.
CLIENT_CLOSED = "499"


def refused_before_core(endpoint: str, status: int) -> None:
    """A request refused before it reached the generation core: its credentials, a body that
    does not parse, a field out of range. Counted with no model (none was resolved)."""
    metrics.requests_total.labels(model="", endpoint=endpoint, status=str(status)).inc()


class Observation:
    """One generation, from the request reaching the core to its last token."""

    def __init__(self, *, endpoint: str, requested_model: str | None):
        self.endpoint = endpoint
        self.requested_model = requested_model
        self.model_id = ""  # known once the model is resolved
        self._started = time.perf_counter()
        self._started_ns = time.time_ns()
        # The request's span (current while the view runs), parent of the generation's
        # span, which starts later, when the response may already have been returned.
        self._parent = otel_context.get_current()
        self._span = None
        self._submitted_at: float | None = None  # the prompt handed to the engine
        self._first_token_at: float | None = None

    def traceparent(self) -> str | None:
        """The request's span as a W3C traceparent, for the engine worker's spans; None untraced."""
        return traceparent(self._parent)

    def _labels(self) -> dict:
        return {"model": self.model_id, "endpoint": self.endpoint}

    @contextlib.contextmanager
    def waiting_for_slot(self):
        """Around the wait for a concurrency slot: counted as waiting, its time recorded once granted."""
        waiting = metrics.requests_waiting.labels(model=self.model_id)
        waiting.inc()
        started = time.perf_counter()
        try:
            yield
        finally:
            waiting.dec()
        metrics.queue_time.labels(**self._labels()).observe(time.perf_counter() - started)

    def refused(self, error: ServiceError) -> None:
        """The request failed before its generation started (400, 404, 429...)."""
        metrics.requests_total.labels(**self._labels(), status=str(error.status)).inc()

    def abandoned(self) -> None:
        """The client went away before its generation started (while it waited for a slot or a load)."""
        metrics.requests_total.labels(**self._labels(), status=CLIENT_CLOSED).inc()
        logger.info("request abandoned before its generation started: the client went away", extra=self._labels())

    def started(
        self, *, model_id: str, operation: str, prompt: str, prompt_tokens: int, sampling: SamplingParams
    ) -> None:
        # Messages read well as text; the same facts are fields of the JSON lines.
        fields = {"model": model_id, "endpoint": self.endpoint, "prompt_tokens": prompt_tokens,
                  "max_tokens": sampling.max_tokens}
        logger.info("generation started: %s on %s, %d prompt tokens, max_tokens %d", self.endpoint, model_id,
                    prompt_tokens, sampling.max_tokens, extra=fields)
        if settings.LLM_LOG_PROMPTS:  # user data: only when the operator asked for it
            logger.info("generation prompt: %r", prompt, extra={"prompt": prompt})
        attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": "mistral.rs",
            "gen_ai.request.model": self.requested_model or model_id,
            "gen_ai.request.max_tokens": sampling.max_tokens,
            "gen_ai.request.temperature": sampling.temperature,
            "llm.endpoint": self.endpoint,
        }
        optional = {"gen_ai.request.top_p": sampling.top_p, "gen_ai.request.top_k": sampling.top_k,
                    "gen_ai.request.stop_sequences": list(sampling.stop) or None}
        attributes.update({name: value for name, value in optional.items() if value is not None})
        self._span = tracer.start_span(
            f"{operation} {model_id}",
            context=self._parent,
            kind=SpanKind.INTERNAL,  # the model runs in this process
            attributes=attributes,
            start_time=self._started_ns,  # from the request's arrival: queueing included
        )
        self._submitted_at = time.perf_counter()
        metrics.requests_running.labels(model=model_id).inc()

    def first_token(self) -> None:
        if self._first_token_at is None:
            self._first_token_at = time.perf_counter()
            metrics.time_to_first_token.labels(**self._labels()).observe(self._first_token_at - self._started)
            metrics.prefill_time.labels(**self._labels()).observe(self._first_token_at - self._submitted_at)

    def finished(self, event: Finished, *, prompt_tokens: int) -> None:
        labels = self._labels()
        duration = time.perf_counter() - self._started
        metrics.requests_total.labels(**labels, status="200").inc()
        metrics.prompt_tokens_total.labels(**labels).inc(prompt_tokens)
        metrics.generated_tokens_total.labels(**labels).inc(event.completion_tokens)
        metrics.prompt_tokens_cached_total.labels(**labels).inc(event.cached_prompt_tokens)
        metrics.generation_duration.labels(**labels).observe(duration)
        if self._first_token_at is not None:
            decode = time.perf_counter() - self._first_token_at
            metrics.decode_time.labels(**labels).observe(decode)
            if event.completion_tokens > 1:
                metrics.time_per_output_token.labels(**labels).observe(decode / (event.completion_tokens - 1))
        self._span.set_attributes(
            {
                "gen_ai.response.model": self.model_id,
                "gen_ai.response.finish_reasons": [event.finish_reason],
                "gen_ai.usage.input_tokens": prompt_tokens,
                "gen_ai.usage.output_tokens": event.completion_tokens,
                "gen_ai.usage.cache_read.input_tokens": event.cached_prompt_tokens,
            }
        )
        fields = {"model": self.model_id, "endpoint": self.endpoint, "prompt_tokens": prompt_tokens,
                  "generated_tokens": event.completion_tokens, "finish_reason": event.finish_reason,
                  "time_to_first_token_ms": self._ms_to_first_token(), "duration_ms": round(duration * 1000, 1)}
        logger.info("generation finished: %(generated_tokens)d tokens (%(finish_reason)s), first after "
                    "%(time_to_first_token_ms)s ms, %(duration_ms)s ms in all", fields, extra=fields)

    def ended_early(self, error: ServiceError | None, *, prompt_tokens: int, generated_tokens: int) -> None:
        """The engine failed (`error`), or the client went away (None), before the last token."""
        labels = self._labels()
        status = str(error.status) if error else CLIENT_CLOSED
        metrics.requests_total.labels(**labels, status=status).inc()
        metrics.prompt_tokens_total.labels(**labels).inc(prompt_tokens)
        metrics.generated_tokens_total.labels(**labels).inc(generated_tokens)
        if error:
            self._span.set_status(Status(StatusCode.ERROR, error.message))
            self._span.set_attribute("error.type", error.code)
            logger.warning("generation failed: %s", error.message, extra={**labels, "error": error.code})
        else:
            self._span.set_attribute("error.type", "cancelled")
            logger.info("generation cancelled after %d tokens: the client went away", generated_tokens,
                        extra={**labels, "generated_tokens": generated_tokens})

    def end(self) -> None:
        if self._span is not None:
            self._span.end()
            self._span = None
            metrics.requests_running.labels(model=self.model_id).dec()

    def timings(self) -> tuple[float | None, float]:
        """Seconds from the request reaching the core to its first token (None before one), and to now."""
        first_token = None if self._first_token_at is None else self._first_token_at - self._started
        return first_token, time.perf_counter() - self._started

    def _ms_to_first_token(self) -> float | None:
        if self._first_token_at is None:
            return None
        return round((self._first_token_at - self._started) * 1000, 1)
