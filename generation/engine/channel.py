"""A model's worker process, seen from the web process: its requests over one channel.

`ModelWorker` starts the process (generation.engine.process), sends it its Load, and then
speaks for it: `stream()` is "a stream of text deltas for this prompt on this model",
`tokenize()` and `detokenize()` ask the engine's tokenizer. Many requests share the
channel, each under its own id. Nothing here blocks the event loop or holds one of its
threads: a writer thread sends, a reader thread receives and hands each answer to the
event loop that waits for it, a third thread logs what the process writes
(generation.engine.logs). What arrives together (a frame of the worker's: the tokens of
one engine step) is handed over together, with one wake-up of the event loop, and a
stream's reader takes all its events that are there at once (`GenerationStream.batches`).

When the process dies (a crash, an OOM kill, kill -9), its channel closes: the reader notices at once, ends each of
its generations with EngineFailed (and releases its slot), and reports the exit. So does a worker that hangs
(generation.engine.watchdog: no heartbeat, or no answer for longer than its work can take), once killed. `stop()`
lets the generations under way finish, then the process exits (killed after `stop_timeout` seconds); a request
that reaches a worker stopped for a replacement (its caller got it just before) goes to the replacement.
"""

import asyncio
import concurrent.futures
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

from catalog.engine_settings import EngineConfig
from catalog.sampling import SamplingParams
from common.errors import EngineFailed, error_from_code
from generation.engine import protocol
from generation.engine.logs import forward_logs
from generation.engine.process import WorkerLoadError, WorkerProcess, WorkerReplaced, WorkerSettings, spawner
from generation.engine.streams import GenerationStream, OpenGeneration, add, hand_over
from generation.engine.types import ChatFormat, engine_error_summary
from generation.engine.watchdog import HEARTBEAT_SECONDS, Watchdog

logger = logging.getLogger(__name__)


class ModelWorker:
    """One model's engine process. `ready` resolves to this worker, or fails with WorkerLoadError.

    `on_exit(worker, how)` is called once, from the reader thread, when a worker that was ready has ended (stopped
    or died); a worker that never got ready reports through `ready`. `on_released(worker)` is called after each
    generation the worker has let go.
    """

    def __init__(
        self, config: EngineConfig, settings: WorkerSettings, *, on_exit: Callable[["ModelWorker", str], None],
        on_released: Callable[["ModelWorker"], None] = lambda worker: None,
    ):
        self.config = config
        self.ready: concurrent.futures.Future = concurrent.futures.Future()
        self.pid: int | None = None
        self.load_seconds: float | None = None  # the engine's load, as the worker's handshake reports it
        self.context_length: int | None = None
        self.chat_format: ChatFormat | None = None  # the model file's own chat template, once ready
        self.vocab_size: int | None = None  # token ids below it, once ready (None: unknown)
        self.stopping = False
        self._replaced_by: ModelWorker | None = None
        self.hang: str | None = None  # why the watchdog killed it, if it did
        self._stop_timeout = settings.stop_timeout
        self._hang_limits = settings.hang_limits
        self._watchdog: Watchdog | None = None  # from Ready on
        self._on_exit = on_exit
        self._on_released = on_released
        self._lock = threading.Lock()
        self._process = WorkerProcess()
        self._connection: Connection | None = None
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()  # messages for the writer thread; None ends it
        self._writer: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._generations: dict[int, OpenGeneration] = {}
        self._tokenizer_requests: dict[int, concurrent.futures.Future] = {}
        self._ended: str | None = None  # how the process ended, once it has
        load = protocol.Load(config, settings.cache_dir, settings.log_level, settings.nice, settings.trace_export)
        self._outbox.put(load)
        spawner.submit(self._spawn)

    # --- the process ----------------------------------------------------------------

    def _spawn(self) -> None:
        """Runs on the spawner thread: start the process and the threads that talk to it."""
        with self._lock:
            if self.stopping:
                failure = "the model was unloaded before its engine started"
            else:
                try:
                    self._connection = self._process.start()
                    self.pid = self._process.pid
                    failure = None
                except OSError as exc:
                    logger.exception("could not start the engine process of %s", self.config.model_id)
                    failure = f"its engine process could not start: {engine_error_summary(exc)}"
        if failure is not None:
            self.ready.set_exception(WorkerLoadError(failure))
            return
        model_id = self.config.model_id
        logger.info("started the engine process of %s (pid %d)", model_id, self.pid,
                    extra={"model": model_id, "worker_pid": self.pid})
        threads = [
            threading.Thread(target=target, name=f"engine {name} {model_id}", daemon=True)
            for target, name in ((self._write, "send"), (self._read, "receive"), (self._forward_logs, "logs"))
        ]
        self._writer = threads[0]
        for thread in threads:
            thread.start()

    def _forward_logs(self) -> None:
        forward_logs(self._process.output, model_id=self.config.model_id, pid=self.pid)

    def stop(self, *, replaced_by: "ModelWorker | None" = None) -> None:
        """Let the generations under way finish, then end the process (killed after the stop timeout, unless it is
        `replaced_by` another, which takes the requests that come later); a worker still loading is killed at once."""
        with self._lock:
            if self.stopping:
                return
            self.stopping, self._replaced_by = True, replaced_by
            if not self._process.started:
                return  # not started yet: _spawn will not start it
        if not self.ready.done():
            self._process.kill()
            return
        self._outbox.put(protocol.Stop())
        timer = threading.Timer(self._stop_timeout, self._kill_if_running)
        timer.daemon = True
        timer.start()

    def _kill_if_running(self) -> None:
        if self._process.running() and self._replaced_by is None:  # a replaced one finishes (unless it hangs)
            logger.warning("the engine process of %s (pid %d) did not stop within %s s: killing it",
                           self.config.model_id, self.pid, self._stop_timeout)
            self._process.kill()

    def rss_mb(self) -> float:
        """The worker process's resident memory (Linux; 0 elsewhere, or once it has ended)."""
        return self._process.rss_mb()

    # --- the channel ------------------------------------------------------------------

    def _write(self) -> None:
        while (message := self._outbox.get()) is not None:
            try:
                self._connection.send(message)
            except OSError:  # the process is gone; the reader reports it
                return

    def _read(self) -> None:
        try:
            while True:
                if self._connection.poll(HEARTBEAT_SECONDS):
                    arrived: dict[OpenGeneration, list] = {}  # what the frame brings each generation
                    for message in self._connection.recv():
                        self._receive(message, arrived)
                    hand_over(arrived)
                self._watch()
        except (EOFError, OSError):
            pass
        except Exception:  # a message this side cannot take: the worker cannot be trusted any more
            logger.exception("unreadable message from the engine process of %s: killing it", self.config.model_id)
            self._process.kill()
        how = self._process.reap()
        self._end(f"hung: {self.hang}; killed" if self.hang is not None else how)

    def _watch(self) -> None:
        """Kill the process if it hangs: its channel then closes, and `_read` ends it as a worker that died."""
        if self._watchdog is None or self.hang is not None:
            return
        with self._lock:
            busy = bool(self._generations or self._tokenizer_requests)
            longest_prompt = max((generation.prompt_tokens for generation in self._generations.values()), default=0)
        reason = self._watchdog.verdict(time.monotonic(), busy=busy, longest_prompt_tokens=longest_prompt)
        if reason is not None:
            self.hang = reason
            logger.error("the engine process of %s (pid %d) hangs (%s): killing it", self.config.model_id, self.pid,
                         reason, extra={"model": self.config.model_id, "worker_pid": self.pid})
            self._process.kill()

    def silent_seconds(self) -> float:
        """How long the ready worker has sent nothing, not even a heartbeat (0 before it is ready)."""
        watchdog = self._watchdog
        return watchdog.silent_seconds(time.monotonic()) if watchdog is not None else 0.0

    def _receive(self, message, arrived: dict[OpenGeneration, list]) -> None:
        """Take one message of a frame; what it brings a generation is added to `arrived`."""
        if self._watchdog is not None:
            if isinstance(message, protocol.Heartbeat):
                self._watchdog.heartbeat(message.cpu_seconds, time.monotonic())
                return
            self._watchdog.progress(time.monotonic())
        match message:
            case protocol.Output(id=generation_id, event=event):
                add(arrived, self._generations.get(generation_id), event)
            case protocol.Admitted(id=generation_id, prompt_tokens=prompt_tokens):
                with self._lock:
                    generation = self._generations.get(generation_id)
                    if generation is not None:
                        generation.prompt_tokens = prompt_tokens
                add(arrived, generation, message)
            case protocol.Released(id=generation_id):
                with self._lock:
                    generation = self._generations.pop(generation_id, None)
                if generation is not None:
                    hand_over(arrived)  # its last events go before its slot
                    arrived.clear()
                    generation.released()
                    self._on_released(self)
            case protocol.TokenIds(id=request_id, tokens=result) | protocol.DetokenizedText(id=request_id, text=result):
                with self._lock:
                    waiting = self._tokenizer_requests.pop(request_id, None)
                if waiting is not None:
                    _answer(waiting, result=result)
            case protocol.Failed(id=request_id, message=text, code=code, field=field):
                error = error_from_code(code, text, field=field)
                with self._lock:
                    waiting = self._tokenizer_requests.pop(request_id, None)
                if waiting is not None:
                    _answer(waiting, error=error)
                else:
                    add(arrived, self._generations.get(request_id), error)
            case protocol.Ready(load_seconds=load_seconds, context_length=context_length, chat_format=chat_format):
                self.load_seconds, self.context_length, self.chat_format = load_seconds, context_length, chat_format
                self.vocab_size = message.vocab_size
                self._watchdog = Watchdog(self._hang_limits, time.monotonic())
                self.ready.set_result(self)
            case protocol.LoadFailed(message=text):
                self.ready.set_exception(WorkerLoadError(text))

    def _end(self, how: str) -> None:
        """The process is gone: end what was waiting for it, then report."""
        with self._lock:
            self._ended = how
            generations, self._generations = self._generations, {}
            tokenizer_requests, self._tokenizer_requests = self._tokenizer_requests, {}
        self._outbox.put(None)
        self._writer.join()
        self._connection.close()
        if self.stopping:
            logger.info("the engine process of %s (pid %d) ended (%s)", self.config.model_id, self.pid, how,
                        extra={"model": self.config.model_id, "worker_pid": self.pid})
            error = EngineFailed(f"Model {self.config.model_id} was unloaded before this generation finished.")
        else:
            error = EngineFailed(f"The engine process of {self.config.model_id} ended unexpectedly ({how}).")
        if not self.ready.done():
            self.ready.set_exception(WorkerLoadError(f"its engine process ended while it loaded ({how})"))
        elif self.ready.exception() is None:  # it had been ready (a failed load was reported already)
            self._on_exit(self, how)  # first: a client that sees the error finds the crash reported
        for generation in generations.values():
            hand_over({generation: [error]})
            generation.released()
        for waiting in tokenizer_requests.values():
            _answer(waiting, error=error)

    def _open(self, table: dict, entry, make_request: Callable[[int], object]) -> int:
        """Register a request and send it (never after a Stop); EngineFailed if the worker takes no more."""
        with self._lock:
            if self.stopping and self._replaced_by is not None:  # ended or not
                raise WorkerReplaced(self._replaced_by)
            if self._ended is not None:
                raise EngineFailed(f"The engine process of {self.config.model_id} ended ({self._ended}).")
            if self.stopping:
                raise EngineFailed(f"Model {self.config.model_id} was just unloaded; try again.", retry_after=1)
            if not (self._generations or self._tokenizer_requests) and self._watchdog is not None:
                self._watchdog.progress(time.monotonic())  # idle until now: its silence on requests starts here
            request_id = next(self._ids)
            table[request_id] = entry
            self._outbox.put(make_request(request_id))
            return request_id

    async def _ask(self, make_request: Callable[[int], object]):
        """Send a tokenizer request and wait for its answer, holding no thread; forgotten if the caller leaves."""
        answer: concurrent.futures.Future = concurrent.futures.Future()
        try:
            request_id = self._open(self._tokenizer_requests, answer, make_request)
        except WorkerReplaced as replaced:
            return await replaced.args[0]._ask(make_request)
        try:
            return await asyncio.wrap_future(answer)
        finally:
            with self._lock:
                self._tokenizer_requests.pop(request_id, None)

    # --- what the service asks ----------------------------------------------------------

    async def tokenize(self, text: str) -> tuple[int, ...]:
        """Token ids of a text (special tokens written as text are parsed)."""
        return await self._ask(lambda request_id: protocol.Tokenize(request_id, text))

    async def detokenize(self, tokens: tuple[int, ...]) -> str:
        """The text of token ids."""
        return await self._ask(lambda request_id: protocol.Detokenize(request_id, tuple(tokens)))

    async def count_tokens(self, text: str) -> int:
        """Tokens of a rendered prompt, as the engine counts them."""
        return len(await self.tokenize(text))

    async def stream(
        self, prompt: str, sampling: SamplingParams, *, keep_leading_whitespace: bool, released: Callable[[], None],
        traceparent: str | None = None,
    ) -> GenerationStream:
        """Start generating from a rendered prompt: one message to the worker, which counts the
        prompt's tokens and admits it, or refuses it (PromptTooLong: over the context), before
        its first token. Returns once admitted; its events follow.

        `released` is called once, from any thread, when the engine has let the request go
        (admitted or not, cancelled or not): only then is the work it caused over. `traceparent`:
        the request's span, under which a worker with an exporter traces the generation's phases.
        """
        events: asyncio.Queue = asyncio.Queue()
        try:
            generation = OpenGeneration(asyncio.get_running_loop(), events, released)
            generation_id = self._open(self._generations, generation, lambda id_: protocol.Generate(
                id_, prompt, sampling, keep_leading_whitespace, traceparent))
        except WorkerReplaced as replaced:
            return await replaced.args[0].stream(prompt, sampling, keep_leading_whitespace=keep_leading_whitespace,
                                                 released=released, traceparent=traceparent)
        except BaseException:
            released()  # the engine never saw it
            raise
        try:
            answer, *arrived = await events.get()
        except BaseException:
            # The client left before the answer, which can wait for a whole prefill under way (the
            # engine's tokenizer waits for its step): the worker will find it cancelled before
            # its prefill gate and never submit it, so the engine owes it nothing from now on.
            self._outbox.put(protocol.Cancel(generation_id))
            with self._lock:
                forgotten = self._generations.pop(generation_id, None)
            if forgotten is not None:
                released()
            raise
        if isinstance(answer, Exception):
            raise answer  # a refusal, or the worker's death: either way, it is over
        return GenerationStream(self._outbox, generation_id, events, answer, arrived)

    def abort_generations(self, error: Exception) -> None:
        """End each generation under way with `error` now; the worker drops them at their next token (and then
        releases their slots, as for a client that left)."""
        with self._lock:
            generations = list(self._generations.items())
        for generation_id, generation in generations:
            self._outbox.put(protocol.Cancel(generation_id))
            hand_over({generation: [error]})


def _answer(waiting: concurrent.futures.Future, *, result=None, error: Exception | None = None) -> None:
    """Settle a tokenizer request's future, unless its caller left (which cancels it) meanwhile."""
    if waiting.set_running_or_notify_cancel():
        if error is not None:
            waiting.set_exception(error)
        else:
            waiting.set_result(result)
