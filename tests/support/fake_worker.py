"""A fake engine worker, for contract tests of the APIs in the test process: no worker
process, no model.

`FakeWorker` has the public interface of generation.engine.channel.ModelWorker, the one the
engine cache and the generation core use; `FakeEngine` makes the fakes and is scripted per
test: what each generation emits (`Script`: its tokens, finish reason, logprobs, prompt
token count, a domain error, a hang, a crash), which models fail to load, which stop
answering. `FakeEngine.installed()` makes it the engine of the process: the engine cache
of a runtime installed with generation.lifecycle.runtime.install starts FakeWorkers instead of
processes.

Its tokenizer is one token per character (the token id is the code point), so that
counts and ids are easy to predict.
"""

import asyncio
import concurrent.futures
import contextlib
import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

from catalog.engine_settings import EngineConfig
from catalog.sampling import SamplingParams
from common.errors import EngineFailed, ServiceError
from generation.lifecycle import runtime
from generation.engine import cache as engine_cache_module
from generation.engine.types import ChatFormat, Finished, TextDelta, TokenLogprob
from generation.engine.cache import EngineCache
from generation.engine.process import WorkerLoadError, WorkerSettings
from generation.engine.runner import fit_to_context
from generation.engine.streams import one_by_one
from generation.core.limiter import ConcurrencyLimiter

# The model file's own chat template, for an entry that has none (the bundled SmolLM2's).
CHAT_FORMAT = ChatFormat(
    template="{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}<|assistant|>",
    bos_token="<s>",
    eos_token="</s>",
)
VOCAB_SIZE = 0x110000  # every code point is a token


@dataclass(frozen=True)
class Script:
    """What the worker does with one generation: emit `tokens` (one TextDelta each, with a logprob
    when the request asked for them), then end with `finish_reason`, or instead raise `failure`,
    hang until the client leaves (`hang`), or die (`crash`)."""

    tokens: tuple[str, ...] = ("Hello", ",", " world")
    finish_reason: str = "length"
    prompt_tokens: int | None = None  # what Finished reports; None: the count the worker admitted
    failure: ServiceError | None = None
    hang: bool = False
    crash: bool = False
    delay: float = 0.0  # seconds before each token (and before the end)
    cached_prompt_tokens: int = 0  # what Finished reports the engine's prefix cache gave
    # Events that arrive together, as the worker sends an engine step's in one frame: the tokens
    # (and the end, after the last) in batches of this many, `delay` before each batch.
    together: int = 1

    @classmethod
    def text(cls, text: str, size: int = 4, **kwargs) -> "Script":
        """A script that emits `text` in pieces of `size` characters (a tool call's JSON, say)."""
        return cls(tokens=tuple(text[start:start + size] for start in range(0, len(text), size)), **kwargs)


@dataclass
class GenerateCall:
    """A generation as the worker received it, and what became of it."""

    model_id: str
    prompt: str
    sampling: SamplingParams
    prompt_tokens: int
    keep_leading_whitespace: bool
    traceparent: str | None = None  # the request's span, as the real worker would get it
    finished: bool = False
    cancelled: bool = False  # the client left before its end
    released: bool = False
    worker_pid: int | None = None  # the fake worker that served it


def token_logprob(token: str) -> TokenLogprob:
    """The logprob a fake gives each token: the token most likely, then an "x" much less so."""
    return TokenLogprob(token=token, logprob=-0.25, bytes=tuple(token.encode()), top=((token, -0.25), ("x", -3.5)))


@dataclass
class FakeEngine:
    """The fakes' script, and what they saw. Scripts queued with `script()` are taken one per
    generation, in order; then `default` serves every generation. A worker takes the context
    length, chat format and load failure in force when it starts (a model's first request)."""

    default: Script = field(default_factory=Script)
    context_length: int | None = 4096
    chat_format: ChatFormat | None = CHAT_FORMAT
    load_failures: dict[str, str] = field(default_factory=dict)  # model id -> the worker's load error
    silent_seconds: float = 0.0  # what every worker reports (over 3 s: "unresponsive")
    hold_loads: bool = False  # workers stay loading until the test calls their finish_load()
    calls: list[GenerateCall] = field(default_factory=list)
    workers: list["FakeWorker"] = field(default_factory=list)
    _scripts: deque = field(default_factory=deque)

    def script(self, *scripts: Script) -> None:
        self._scripts.extend(scripts)

    def next_script(self) -> Script:
        return self._scripts.popleft() if self._scripts else self.default

    def worker(self, config: EngineConfig, settings: WorkerSettings, *, on_exit, on_released) -> "FakeWorker":
        worker = FakeWorker(self, config, on_exit=on_exit, on_released=on_released)
        self.workers.append(worker)
        return worker

    @contextlib.contextmanager
    def installed(self, *, max_active: int = 4, max_queued: int = 4, queue_timeout: float = 5) -> Iterator:
        """This engine as the process's: a runtime whose engine cache starts fakes, installed for
        the block (the previous runtime is put back after it). Yields the runtime."""
        # EngineCache builds each worker with its module's ModelWorker (it takes no factory).
        original = engine_cache_module.ModelWorker
        engine_cache_module.ModelWorker = self.worker
        cache = EngineCache(cache_dir="unused-by-fakes", max_loaded=2)
        limiter = ConcurrencyLimiter(max_active=max_active, max_queued=max_queued, timeout=queue_timeout)
        installed = runtime.Runtime(engine_cache=cache, limiter=limiter)
        installed.startup_loads.finished.set()  # no start-up loads: ready
        previous = runtime.install(installed)
        try:
            yield installed
        finally:
            runtime.install(previous)
            engine_cache_module.ModelWorker = original


_pids = itertools.count(90001)


class FakeWorker:
    """ModelWorker's public interface, acting out its engine's scripts."""

    def __init__(self, engine: FakeEngine, config: EngineConfig, *, on_exit: Callable, on_released: Callable):
        self.engine = engine
        self.config = config
        self.ready: concurrent.futures.Future = concurrent.futures.Future()
        self.pid = next(_pids)
        self.load_seconds = 0.01
        self.context_length = engine.context_length
        self.chat_format = engine.chat_format
        self.vocab_size = VOCAB_SIZE
        self.stopping = False
        self.replaced_by: FakeWorker | None = None
        self.hang: str | None = None
        self.ended: str | None = None
        self.rss = 0.0  # what rss_mb() reports, in MB
        self._on_exit = on_exit
        self._on_released = on_released
        if not engine.hold_loads:
            self.finish_load()

    def finish_load(self) -> None:
        """Ready, or failed as `engine.load_failures` says (at once, unless the engine holds loads)."""
        if self.config.model_id in self.engine.load_failures:
            self.ready.set_exception(WorkerLoadError(self.engine.load_failures[self.config.model_id]))
        else:
            self.ready.set_result(self)

    def stop(self, *, replaced_by: "FakeWorker | None" = None) -> None:
        self.stopping = True
        self.replaced_by = replaced_by

    def silent_seconds(self) -> float:
        return self.engine.silent_seconds

    def rss_mb(self) -> float:
        return self.rss

    def _check_open(self) -> None:
        if self.ended is not None:
            raise EngineFailed(f"The engine process of {self.config.model_id} ended ({self.ended}).")

    async def tokenize(self, text: str) -> tuple[int, ...]:
        self._check_open()
        return tuple(ord(character) for character in text)

    async def detokenize(self, tokens: tuple[int, ...]) -> str:
        self._check_open()
        return "".join(chr(token) for token in tokens if token < VOCAB_SIZE)  # as the engine: no text beyond it

    async def count_tokens(self, text: str) -> int:
        return len(await self.tokenize(text))

    async def stream(
        self, prompt: str, sampling: SamplingParams, *, keep_leading_whitespace: bool, released: Callable[[], None],
        traceparent: str | None = None,
    ) -> "FakeStream":
        """Admit the prompt as the worker does (its count against the context), then act out the script; a worker
        stopped for a replacement hands it to the replacement, as ModelWorker does."""
        if self.stopping and self.replaced_by is not None:
            return await self.replaced_by.stream(
                prompt, sampling, keep_leading_whitespace=keep_leading_whitespace, released=released,
                traceparent=traceparent,
            )

        def release() -> None:
            released()
            self._on_released(self)

        try:
            self._check_open()
            prompt_tokens = await self.count_tokens(prompt)
            sampling = fit_to_context(self.config.model_id, prompt_tokens, self.context_length, sampling)
        except BaseException:
            release()  # refused: the engine owes it nothing
            raise
        call = GenerateCall(self.config.model_id, prompt, sampling, prompt_tokens, keep_leading_whitespace, traceparent,
                            worker_pid=self.pid)
        self.engine.calls.append(call)
        return FakeStream(self, call, self.engine.next_script(), release)

    def _crash(self) -> None:
        """The process died (as ModelWorker reports it): the cache forgets it, its generation fails."""
        self.ended = "killed by SIGKILL"
        self._on_exit(self, self.ended)
        raise EngineFailed(f"The engine process of {self.config.model_id} ended unexpectedly ({self.ended}).")

    def abort_generations(self, error: Exception) -> None:
        """Not acted out: no contract test shuts the server down."""


class FakeStream:
    """GenerationStream's interface: the admitted counts, `batches()` acting out the script (and
    `events()`, one by one), `close()`."""

    def __init__(self, worker: FakeWorker, call: GenerateCall, script: Script, release: Callable[[], None]):
        self.prompt_tokens = call.prompt_tokens
        self.max_tokens = call.sampling.max_tokens
        self._worker = worker
        self._call = call
        self._script = script
        self._release = release
        self._over = False

    async def batches(self) -> AsyncIterator[list[TextDelta | Finished]]:
        call, script = self._call, self._script
        with_logprobs = call.sampling.top_logprobs is not None
        deltas = [TextDelta(token, token_logprob(token) if with_logprobs else None) for token in script.tokens]
        ends = not (script.crash or script.failure or script.hang)
        reported = script.prompt_tokens if script.prompt_tokens is not None else call.prompt_tokens
        finished = Finished(script.finish_reason, reported, len(deltas), script.cached_prompt_tokens)
        events = [*deltas, finished] if ends else deltas
        try:
            for start in range(0, len(events), script.together):
                await asyncio.sleep(script.delay)
                batch = events[start:start + script.together]
                call.finished = isinstance(batch[-1], Finished)
                yield batch
            if ends:
                return
            await asyncio.sleep(script.delay)
            if script.crash:
                self._worker._crash()
            if script.failure is not None:
                raise script.failure
            await asyncio.Event().wait()  # a hang: until the client leaves
        except Exception:
            self._end(cancelled=False)  # failed: over, not cancelled
            raise
        finally:
            self.close()

    def events(self) -> AsyncIterator[TextDelta | Finished]:
        return one_by_one(self.batches())

    def close(self) -> None:
        """The client left (or the stream ended): the real worker drops the generation and lets it go."""
        self._end(cancelled=not self._call.finished)

    def _end(self, *, cancelled: bool) -> None:
        if not self._over:
            self._over = True
            self._call.cancelled = cancelled
            self._call.released = True
            self._release()
