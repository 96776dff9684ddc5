"""The mistral.rs engine behind one small interface.

The rest of the service asks this module for "a stream of text deltas for this prompt
on this model" and never touches `mistralrs` types. Here live the process-wide cache of
loaded engines (one `Runner` per model, loaded once, least recently used unloaded first),
and the ways around the defects of mistral.rs 0.9.5 measured on CPU:

- `Runner` is not re-entrant ("Already borrowed"), and two prompts prefilled in the same
  step crash on CPU ("input tensor is not contiguous"). One admission lock per model is
  held from the submit call until the first chunk arrives: submits never overlap, and
  only one prompt is ever in prefill. Iteration happens outside the lock, in a thread
  per generation, never on the event loop.
- The chat path strips the leading whitespace of the output, which a raw continuation
  must keep: it is restored from the token text that the logprobs carry.
- The engine only sees prompts the service rendered itself, through a pass-through chat
  template (a base model's GGUF has none, and the engine refuses chat without one).
"""

import asyncio
import concurrent.futures
import logging
import math
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import Tokenizer

from generation import model_files
from generation.errors import EngineFailed, ModelUnavailable

logger = logging.getLogger(__name__)

# How often a request waiting for the prefill gate checks whether its client has left.
PREFILL_GATE_POLL_SECONDS = 0.05
MAX_ERROR_SUMMARY_CHARS = 300
_PATH = re.compile(r"(?:/[^\s'\"/:]+){2,}/?")  # an absolute path of two parts or more

PASSTHROUGH_TEMPLATE = Path(__file__).with_name("passthrough_chat_template.jinja")


@dataclass(frozen=True)
class EngineConfig:
    """Everything that decides how a model is loaded. A change means a reload."""

    model_id: str
    source: str  # "bundled", "gguf_file", "hf_gguf" or "safetensors"
    location: str = ""
    filename: str = ""
    tokenizer_json: str = ""
    context_length: int | None = None
    in_situ_quant: str = ""
    max_seqs: int = 8
    seed: int | None = None
    prefix_cache_n: int = 0


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Finished:
    finish_reason: str  # as the engine reports it: "stop", "length", "eos"...
    prompt_tokens: int
    completion_tokens: int


@dataclass(eq=False)
class LoadedModel:
    config: EngineConfig
    runner: object
    tokenizer: Tokenizer
    context_length: int | None
    load_seconds: float
    admission: threading.Lock = field(default_factory=threading.Lock)

    def count_tokens(self, text: str) -> int:
        # Prompts carry their special tokens as text (e.g. "<bos>"), as the engine sees them.
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)


def restore_leading_whitespace(delta: str, token_text: str | None) -> str:
    """The delta with the leading whitespace that the engine's chat path stripped.

    `token_text` is the text of the same token as the logprobs report it, unstripped.
    """
    if token_text is None or delta == token_text or not token_text.endswith(delta):
        return delta
    missing = token_text[: len(token_text) - len(delta)]
    return missing + delta if missing.isspace() else delta


def _load_runner(config: EngineConfig, cache_dir: Path) -> LoadedModel:
    from mistralrs import Runner, Which  # imported here: loading the engine is slow

    started = time.perf_counter()
    tokenizer_json = config.tokenizer_json or None
    context_length = config.context_length
    gguf_path = model_files.local_gguf(
        source=config.source, location=config.location, filename=config.filename, cache_dir=cache_dir
    )
    if gguf_path is None:
        which = Which.Plain(model_id=config.location, tokenizer_json=tokenizer_json)
    else:
        prepared = model_files.prepare_gguf(gguf_path, cache_dir)
        tokenizer_json = tokenizer_json or str(prepared.tokenizer_json)
        context_length = context_length or prepared.context_length
        which = Which.GGUF(
            quantized_model_id=str(gguf_path.parent),
            quantized_filename=gguf_path.name,
            tokenizer_json=tokenizer_json,
        )
    if tokenizer_json is None:
        raise ValueError("A safetensors model needs a tokenizer.json path in the catalog")
    runner = Runner(
        which=which,
        token_source="none",
        max_seqs=config.max_seqs,
        jinja_explicit=str(PASSTHROUGH_TEMPLATE),
        in_situ_quant=config.in_situ_quant or None,
        seed=config.seed,
        prefix_cache_n=config.prefix_cache_n,
    )
    return LoadedModel(
        config=config,
        runner=runner,
        tokenizer=Tokenizer.from_file(tokenizer_json),
        context_length=context_length,
        load_seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class LoadFailure:
    config: EngineConfig
    message: str  # for clients: no server paths (the log has the whole error)
    backoff: float
    retry_at: float  # time.monotonic()

    def retry_in(self) -> float:
        return self.retry_at - time.monotonic()

    def error(self) -> ModelUnavailable:
        retry_in = max(1, math.ceil(self.retry_in()))
        return ModelUnavailable(f"{self.message} (next try in {retry_in} s)", retry_after=retry_in)


class EngineCache:
    """Loaded engines of this process, keyed by model id.

    Loads run in a worker thread; requests that arrive during a load wait for the same
    load instead of starting another. A configuration that failed to load is not tried
    again before its back-off has passed (doubling from `retry_after_failure` up to
    `max_retry_after_failure`): requests meanwhile get the same error at once, instead of
    each paying for a load that fails again. A changed configuration is tried at once.
    """

    def __init__(
        self,
        *,
        cache_dir: Path,
        max_loaded: int,
        retry_after_failure: float = 10.0,
        max_retry_after_failure: float = 300.0,
    ):
        self.cache_dir = Path(cache_dir)
        self.max_loaded = max_loaded
        self.retry_after_failure = retry_after_failure
        self.max_retry_after_failure = max_retry_after_failure
        self._lock = threading.Lock()
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._loading: dict[str, tuple[EngineConfig, concurrent.futures.Future]] = {}
        self.failures: dict[str, LoadFailure] = {}
        # The streams being consumed, as (emit, cancelled), so that a shutdown can end them.
        self._streams: set[tuple[Callable, threading.Event]] = set()
        self.load_counts: Counter[str] = Counter()
        self.listeners: list = []  # callables(event: str, model_id: str, seconds: float)

    # --- loading ---------------------------------------------------------------------

    def _load_future(self, config: EngineConfig) -> concurrent.futures.Future:
        with self._lock:
            loaded = self._models.get(config.model_id)
            if loaded is not None and loaded.config == config:
                self._models.move_to_end(config.model_id)
                future = concurrent.futures.Future()
                future.set_result(loaded)
                return future
            pending = self._loading.get(config.model_id)
            if pending is not None and pending[0] == config:
                return pending[1]
            future = concurrent.futures.Future()
            failure = self.failures.get(config.model_id)
            if failure is not None and failure.config == config and failure.retry_in() > 0:
                future.set_exception(failure.error())
                return future
            self._loading[config.model_id] = (config, future)
            self.load_counts[config.model_id] += 1
        threading.Thread(target=self._load, args=(config, future), name=f"load {config.model_id}", daemon=True).start()
        return future

    def _load(self, config: EngineConfig, future: concurrent.futures.Future) -> None:
        logger.info("loading model %s", config.model_id)
        started = time.perf_counter()
        try:
            loaded = _load_runner(config, self.cache_dir)
        except Exception as exc:  # any load failure is reported, the process keeps serving
            logger.exception("model %s failed to load", config.model_id)
            with self._lock:
                if self._loading.get(config.model_id, (None, None))[1] is future:
                    del self._loading[config.model_id]
                previous = self.failures.get(config.model_id)
                backoff = self.retry_after_failure
                if previous is not None and previous.config == config:
                    backoff = min(previous.backoff * 2, self.max_retry_after_failure)
                failure = LoadFailure(
                    config=config,
                    message=f"Model {config.model_id} could not be loaded: {engine_error_summary(exc)}",
                    backoff=backoff,
                    retry_at=time.monotonic() + backoff,
                )
                self.failures[config.model_id] = failure
            self._notify("load_failed", config.model_id, time.perf_counter() - started)
            future.set_exception(failure.error())
            return
        with self._lock:
            if self._loading.get(config.model_id, (None, None))[1] is future:
                del self._loading[config.model_id]
            self._models[config.model_id] = loaded
            self._models.move_to_end(config.model_id)
            self.failures.pop(config.model_id, None)
            while len(self._models) > self.max_loaded:
                evicted, _ = self._models.popitem(last=False)
                logger.info("unloaded model %s (least recently used)", evicted)
        logger.info("loaded model %s in %.1f s", config.model_id, loaded.load_seconds)
        self._notify("loaded", config.model_id, loaded.load_seconds)
        future.set_result(loaded)

    def _notify(self, event: str, model_id: str, seconds: float) -> None:
        for listener in self.listeners:
            listener(event, model_id, seconds)

    async def get(self, config: EngineConfig) -> LoadedModel:
        """The loaded engine for this configuration, loading (or reloading) it if needed."""
        return await asyncio.wrap_future(self._load_future(config))

    def load(self, config: EngineConfig) -> LoadedModel:
        """Blocking form of `get`, for start-up and management commands."""
        return self._load_future(config).result()

    def unload(self, model_id: str) -> bool:
        """Forget a model. Generations still running on it finish first; then it is freed."""
        with self._lock:
            self.failures.pop(model_id, None)
            return self._models.pop(model_id, None) is not None

    def loaded_model_ids(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def failure(self, config: EngineConfig) -> "LoadFailure | None":
        """The last failed load of this very configuration, if it has not loaded since."""
        with self._lock:
            failure = self.failures.get(config.model_id)
            return failure if failure is not None and failure.config == config else None

    # --- generation ------------------------------------------------------------------

    async def stream(
        self,
        model: LoadedModel,
        prompt: str,
        sampling: Sampling,
        *,
        keep_leading_whitespace: bool,
        released: Callable[[], None],
    ) -> AsyncIterator[TextDelta | Finished]:
        """Generate from a rendered prompt: text deltas, then one Finished.

        Closing the iterator early (a client went away) cancels the generation: a request
        still waiting for the prefill gate is never submitted, and one in prefill is
        dropped at its first token (mistral.rs 0.9.5 cannot interrupt a prefill).
        `released` is called once, from any thread, when the engine has let the request
        go: only then is the work it caused over.
        """
        from mistralrs import ChatCompletionRequest

        cancelled = threading.Event()
        try:
            request = ChatCompletionRequest(
                messages=[{"role": "user", "content": prompt}],
                model=model.config.model_id,
                max_tokens=sampling.max_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k,
                repetition_penalty=sampling.repetition_penalty,
                stop_seqs=list(sampling.stop) or None,
                stream=True,
                logprobs=keep_leading_whitespace,
            )
            queue: asyncio.Queue = asyncio.Queue()
            emit = _emitter(asyncio.get_running_loop(), queue, cancelled)
            threading.Thread(
                target=_produce,
                args=(model, request, keep_leading_whitespace, cancelled, emit, released),
                name=f"generate {model.config.model_id}",
                daemon=True,
            ).start()
        except BaseException:
            released()  # the engine never saw it
            raise
        self._streams.add((emit, cancelled))
        try:
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                yield item
                if isinstance(item, Finished):
                    return
        finally:
            cancelled.set()
            self._streams.discard((emit, cancelled))

    def abort_streams(self, error: Exception) -> None:
        """End every stream with `error` (the engine drops their sequences at their next token)."""
        for emit, cancelled in list(self._streams):
            cancelled.set()
            emit(error)


def _emitter(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, cancelled: threading.Event):
    """A function that hands an item from the producer thread to the event loop's queue."""

    def emit(item) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            cancelled.set()

    return emit


def _produce(model, request, keep_leading_whitespace, cancelled, emit, released) -> None:
    """Runs in its own thread: submits the request and feeds its chunks to the event loop."""
    try:
        _generate(model, request, keep_leading_whitespace, cancelled, emit)
    except Exception as exc:  # engine errors become an error for this request only
        logger.exception("generation failed on %s", model.config.model_id)
        emit(EngineFailed(f"The engine failed: {engine_error_summary(exc)}"))
    finally:
        # _generate has returned: the engine's stream iterator is dropped, so the engine
        # drops the sequence at its next step.
        released()


def _generate(model, request, keep_leading_whitespace, cancelled, emit) -> None:
    if not _pass_prefill_gate(model, cancelled):
        logger.debug("not submitted to %s: the client left while it waited", model.config.model_id)
        return
    try:
        chunks = model.runner.send_chat_completion_request(request)
        chunk = next(chunks, None)  # the prefill
    finally:
        model.admission.release()
    stripping = keep_leading_whitespace  # until the first non-whitespace text
    while chunk is not None and not cancelled.is_set():
        choice = chunk.choices[0]
        text = choice.delta.content or ""
        if stripping:
            token_text = choice.logprobs.token if choice.logprobs is not None else None
            text = restore_leading_whitespace(text, token_text)
            stripping = not text.strip()
        if text:
            emit(TextDelta(text))
        if choice.finish_reason is not None:
            usage = chunk.usage
            emit(
                Finished(
                    finish_reason=choice.finish_reason,
                    prompt_tokens=usage.prompt_tokens if usage else 0,
                    completion_tokens=usage.completion_tokens if usage else 0,
                )
            )
            return
        chunk = next(chunks, None)
    if cancelled.is_set():
        logger.debug("dropped by %s: the client left", model.config.model_id)
    elif chunk is None:
        emit(EngineFailed("The engine ended the stream without a finish reason"))


def _pass_prefill_gate(model: LoadedModel, cancelled: threading.Event) -> bool:
    """Wait for the model's prefill gate, giving up as soon as the request is cancelled.

    True with the gate held; False (gate not held) when the request was cancelled first.
    """
    while not model.admission.acquire(timeout=PREFILL_GATE_POLL_SECONDS):
        if cancelled.is_set():
            return False
    if cancelled.is_set():
        model.admission.release()
        return False
    return True


def engine_error_summary(exc: BaseException) -> str:
    """What a client may read of an engine error: its first line, without server paths.

    The engine's messages can carry a Rust backtrace and file paths; the log keeps those.
    """
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else type(exc).__name__
    first = _PATH.sub(lambda match: Path(match.group(0)).name, first)
    return first[:MAX_ERROR_SUMMARY_CHARS]
