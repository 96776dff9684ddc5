"""The generation core that every API (native, OpenAI-compatible, WebSocket) translates onto.

`prepare_generation` does everything that can fail with a clear client error before a
response starts (model resolution, defaults and limits, prompt rendering and length, the
caller's API key limits, a concurrency slot); `Generation.events()` then streams the
text, and records its usage (per key, or none) and the generation's metrics, span and log lines.
"""

import asyncio
import dataclasses
import json
import logging
import threading
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connections

from access.services import (
    Admission,
    GenerationUsage,
    admit_request,
    check_model_allowed,
    check_window_open,
    record_usage,
)
from catalog import snapshot
from catalog.models import ModelEntry
from catalog.sampling import SamplingParams
from catalog.selectors import ServableModel, allowed_models, engine_config, resolve_model
from catalog.snapshot import Catalog
from common.errors import InvalidRequest, PromptTooLong, ServiceError
from generation.core.limiter import ConcurrencyLimiter
from generation.core.observation import Observation
from generation.core.prompts import RenderedPrompt, needs_the_files_template, render_prompt
from generation.core.request import GenerationRequest
from generation.core.tool_calls import ToolPlan
from generation.engine.cache import EngineCache
from generation.engine.model_files import prepared_gguf
from generation.engine.streams import GenerationStream, one_by_one
from generation.engine.types import Finished, TextDelta, TokenLogprob
from generation.lifecycle.runtime import current

logger = logging.getLogger(__name__)



def engine_cache() -> EngineCache:
    """This process's engine cache (its runtime's)."""
    return current().engine_cache


def limiter() -> ConcurrencyLimiter:
    """This process's concurrency limiter (its runtime's)."""
    return current().limiter


class _Slot:
    """A request's concurrency slot, given back once: by its preparation if that fails before the
    engine has the request; once the engine has it, by the engine, when it has really let the
    request go (a client that leaves during a prefill does not free the engine before it ends)."""

    def __init__(self, held_by: ConcurrencyLimiter):
        self._limiter = held_by
        self._lock = threading.Lock()
        self._held = True
        self.with_engine = False

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, False
        if held:
            self._limiter.release()


class Generation:
    """A generation its engine admitted: its concurrency slot is held until the engine lets it go,
    after its events are consumed, or once it is dropped."""

    def __init__(
        self,
        *,
        model_id: str,
        stream: GenerationStream,
        observation: Observation,
        api_key=None,
        admission: Admission | None = None,
        client_stops: bool = False,
        tool_plan: ToolPlan | None = None,
    ):
        self.model_id = model_id
        self.prompt_tokens = stream.prompt_tokens
        self._stream = stream
        self._observation = observation
        self._api_key = api_key
        self._admission = admission  # its key's rate window, with max_tokens reserved until it ends
        # Whether the request set stop sequences: the native API's "eos" is a "stop" without them.
        self.client_stops = client_stops
        self.tool_plan = tool_plan  # how to read tool calls in the text (generation.core.tool_calls.parse_output)

    def __del__(self):
        # A response that never started streaming cancels its generation (the engine gives its
        # slot back once it let it go), and must not leave its span open.
        self._stream.close()
        self._observation.end()

    async def batches(self) -> AsyncIterator[list[TextDelta | Finished]]:
        """The generation's events in lists of those that arrived together (never empty): text
        deltas, then Finished alone, once its usage is recorded (no delta waits for that)."""
        observation = self._observation
        deltas = 0
        finished = False
        error = None
        try:
            async for batch in self._stream.batches():
                end = batch.pop() if isinstance(batch[-1], Finished) else None
                if batch:
                    deltas += len(batch)
                    observation.first_token()
                    yield batch
                if end is not None:
                    # Recorded before the caller sees the end, so that a client reading its
                    # response and then /metrics or its usage finds them counted.
                    finished = True
                    # The engine reports no prompt count when its usage is missing: ours stands in.
                    end = dataclasses.replace(end, prompt_tokens=end.prompt_tokens or self.prompt_tokens)
                    observation.finished(end, prompt_tokens=end.prompt_tokens)
                    usage = self._usage(end.prompt_tokens, end.completion_tokens, "finished")
                    await sync_to_async(_record_usage)(**usage)
                    yield [end]
        except ServiceError as exc:
            error = exc
            raise
        finally:
            if not finished:
                # Failed or cancelled: a delta is about a token (the engine sends one per token).
                observation.ended_early(error, prompt_tokens=self.prompt_tokens, generated_tokens=deltas)
                # Not awaited: a cancelled task must not wait on the database.
                outcome = "failed" if error else "cancelled"
                _in_background(_record_usage, **self._usage(self.prompt_tokens, deltas, outcome))
            observation.end()

    def events(self) -> AsyncIterator[TextDelta | Finished]:
        """The events of `batches()`, one by one."""
        return one_by_one(self.batches())

    def _usage(self, prompt_tokens: int, generated_tokens: int, outcome: str) -> dict:
        first_token, duration = self._observation.timings()
        usage = GenerationUsage(
            model_id=self.model_id, prompt_tokens=prompt_tokens, generated_tokens=generated_tokens,
            outcome=outcome, time_to_first_token=first_token, duration=duration,
        )
        return {"api_key": self._api_key, "admission": self._admission, "usage": usage}

    async def collect(self) -> tuple[str, Finished, list[TokenLogprob]]:
        """The whole text, the final event and the tokens' logprobs (if asked for), for non-streaming responses."""
        parts, logprobs = [], []
        async for event in self.events():
            if isinstance(event, TextDelta):
                parts.append(event.text)
                if event.logprob is not None:
                    logprobs.append(event.logprob)
            else:
                return "".join(parts), event, logprobs
        raise AssertionError("a generation always ends with Finished")  # pragma: no cover


def _record_usage(**usage) -> None:
    # The answer matters more than its accounting: a database failure here is logged, not raised.
    try:
        record_usage(**usage)
    except DatabaseError:
        key = usage["api_key"]
        logger.exception("usage of %s not recorded", f"API key {key.pk}" if key else "a request without a key")


def _in_background(function, **kwargs) -> None:
    def run():
        try:
            function(**kwargs)
        finally:
            connections.close_all()  # this thread's own connections

    threading.Thread(target=run, name=function.__name__, daemon=True).start()


async def current_catalog() -> Catalog:
    """The catalog, from memory unless it changed (no thread hop then: catalog.snapshot)."""
    return snapshot.cached() or await sync_to_async(snapshot.load)()


def listed_models() -> list[ModelEntry]:
    """The catalog entries clients may use, less those whose engine failed to load and
    is waiting for its next try."""
    cache = engine_cache()
    return [entry for entry in allowed_models() if cache.failure(engine_config(entry)) is None]


def effective_sampling(model: ServableModel, request: GenerationRequest) -> SamplingParams:
    """The request's sampling parameters over the model's defaults, with the model's stop sequences for a chat."""
    sampling = request.sampling.merged_over(model.defaults)
    if sampling.max_tokens > model.max_tokens_limit:
        raise InvalidRequest(
            f"max_tokens is {sampling.max_tokens}, over this service's limit of {model.max_tokens_limit}.",
            field="max_tokens",
        )
    stop = sampling.stop + (model.chat_stop_sequences if request.is_chat else ())
    return dataclasses.replace(sampling, stop=tuple(dict.fromkeys(stop)))


def check_logit_bias(model_id: str, sampling: SamplingParams, vocab_size: int | None) -> None:
    """The token ids of logit_bias within the model's vocabulary (the engine ignores the others silently)."""
    outside = [token for token, _ in sampling.logit_bias if vocab_size is not None and token >= vocab_size]
    if outside:
        raise InvalidRequest(
            f"Token id {outside[0]} is not in the vocabulary of model {model_id!r} (ids 0 to {vocab_size - 1}).",
            field="logit_bias",
        )


async def prepare_generation(request: GenerationRequest) -> Generation:
    """Validate a request against the catalog and the model, and take a concurrency slot.

    Raises the errors of common.errors; nothing has been sent to the client yet.
    """
    observation = Observation(endpoint=request.endpoint, requested_model=request.model)
    try:
        model = resolve_model(
            await current_catalog(), model_id=request.model, chat=request.is_chat,
            include_disabled=request.include_disabled,
        )
        observation.model_id = model.model_id
        if request.api_key is not None:
            check_model_allowed(api_key=request.api_key, model_id=model.model_id)  # no query (active_key)
        sampling = effective_sampling(model, request)
        prompt = await _prompt_before_load(model, request)
        # The slot is taken before the model is loaded: a load is work for the engine too.
        with observation.waiting_for_slot():
            await limiter().acquire()
        slot = _Slot(held_by=limiter())
        try:
            return await _admit(request, observation, model, sampling, prompt, slot)
        except BaseException:
            if not slot.with_engine:
                slot.release()
            raise
    except ServiceError as exc:
        observation.refused(exc)
        raise
    except asyncio.CancelledError:
        observation.abandoned()
        raise


async def _prompt_before_load(model: ServableModel, request: GenerationRequest) -> RenderedPrompt | None:
    """The prompt, rendered now so that a bad request waits for nothing and loads no model:
    with the catalog entry's template, else with its model file's where that file has been
    prepared on this machine (a request for an entry whose file has no template is refused
    here). None where the file's template is known only once the model is loaded."""
    if not needs_the_files_template(model, request):
        return render_prompt(model, request)
    config = model.engine
    prepared = await asyncio.to_thread(
        prepared_gguf, source=config.source, location=config.location, filename=config.filename,
        cache_dir=engine_cache().cache_dir,
    )
    return None if prepared is None else render_prompt(model, request, prepared.chat_format)


async def _admit(
    request: GenerationRequest,
    observation: Observation,
    model: ServableModel,
    sampling: SamplingParams,
    prompt: RenderedPrompt | None,
    slot: _Slot,
) -> Generation:
    """With a concurrency slot held: load the model, have its engine admit the prompt (its length
    against the context), and count it against the key's limits."""
    loaded = await engine_cache().get(model.engine)
    check_logit_bias(model.model_id, sampling, loaded.vocab_size)
    if prompt is None:
        prompt = render_prompt(model, request, loaded.chat_format)
    tool_plan = prompt.tool_plan
    if tool_plan is not None and tool_plan.schema is not None:
        # The tools' grammar takes the place of any response_format.
        sampling = dataclasses.replace(sampling, json_schema=json.dumps(tool_plan.schema))
    # One message to the engine: it counts the prompt's tokens and answers before any output,
    # admitted (with max_tokens fitted to the context) or refused; from then on, it gives the
    # slot back.
    if request.api_key is not None and request.api_key.has_rate_limits:
        await sync_to_async(check_window_open)(api_key=request.api_key)
    slot.with_engine = True
    try:
        stream = await loaded.stream(
            prompt.text, sampling, keep_leading_whitespace=not request.is_chat, released=slot.release,
            traceparent=observation.traceparent(),
        )
    except PromptTooLong as exc:  # the engine does not know which field held the prompt
        raise PromptTooLong(exc.message, field="messages" if request.is_chat else "prompt") from None
    prompt_tokens = stream.prompt_tokens
    sampling = dataclasses.replace(sampling, max_tokens=stream.max_tokens)
    admission = None
    if request.api_key is not None:
        # Counts this request, its prompt and its max_tokens (given back unused when it ends)
        # against the key's per-minute limits, or raises RateLimited (and the generation is
        # cancelled): before any of its output reaches the client.
        try:
            admission = await sync_to_async(admit_request)(
                api_key=request.api_key, prompt_tokens=prompt_tokens, max_tokens=sampling.max_tokens
            )
        except BaseException:
            stream.close()
            raise
    observation.started(
        model_id=model.model_id,
        operation="chat" if request.is_chat else "text_completion",
        prompt=prompt.text,
        prompt_tokens=prompt_tokens,
        sampling=sampling,
    )
    return Generation(
        model_id=model.model_id,
        stream=stream,
        observation=observation,
        api_key=request.api_key,
        admission=admission,
        client_stops=bool(request.sampling.stop),
        tool_plan=tool_plan,
    )
