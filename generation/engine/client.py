"""A model's worker process, seen from the web process.

`ModelWorker` starts the process (generation.engine.worker), sends it its Load, and then
speaks for it: `stream()` is "a stream of text deltas for this prompt on this model",
`tokenize()` and `detokenize()` ask the engine's tokenizer. Nothing here blocks the event loop
or holds one of its threads: a writer thread sends, a reader thread receives and hands each
answer to the event loop that waits for it, a third thread logs what the process writes.

When the process dies (a crash, an OOM kill, kill -9), its channel closes: the reader
notices at once, ends each of its generations with EngineFailed (and releases its
slot), and reports the exit. `stop()` lets the generations under way finish, then the
process exits; it is killed if it has not after `stop_timeout` seconds.

A worker that hangs (generation.engine.watchdog: no heartbeat, or no answer to its requests
for longer than its work can take) is killed, and ends as a worker that died does.
"""

import asyncio
import concurrent.futures
import itertools
import json
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from catalog.engine_settings import EngineConfig
from catalog.sampling import SamplingParams
from common.errors import EngineFailed, InvalidRequest
from generation.engine import protocol
from generation.engine.api import ChatFormat, Finished, TextDelta, engine_error_summary
from generation.engine.watchdog import HEARTBEAT_SECONDS, HangLimits, Watchdog

logger = logging.getLogger(__name__)
worker_logger = logging.getLogger("generation.engine.worker")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# After its channel closed, how long a process may take to exit before it is killed.
EXIT_GRACE_SECONDS = 5
# The environment a worker gets from the web process: what the engine, its libraries and
# Python read (threads, caches, the hub, CUDA, locale), never the service's secrets
# (DJANGO_SECRET_KEY, DATABASE_URL, REDIS_URL...).
WORKER_ENVIRONMENT = re.compile(
    r"PATH|HOME|USER|LANG|LC_\w+|TZ|TMPDIR|PYTHON\w*|LD_LIBRARY_PATH|SSL_CERT_\w+|XDG_CACHE_HOME"
    r"|HF_\w+|HUGGINGFACE_\w+|RAYON_\w+|OMP_\w+|MKL_\w+|OPENBLAS_\w+|CUDA_\w+|NVIDIA_\w+|MISTRALRS_\w+|RUST_\w+"
)

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_ENGINE_LINE = re.compile(r"^\S+\s+(TRACE|DEBUG|INFO|WARN|ERROR)\s+(.*)$")  # mistral.rs: time, level, text
_LEVELS = {"TRACE": logging.DEBUG, "WARN": logging.WARNING, **logging.getLevelNamesMapping()}


class WorkerLoadError(Exception):
    """The worker did not become ready; the message is for clients (no server paths)."""


class _Spawner:
    """Starts worker processes from one thread that lives as long as the web process.

    Linux sends a worker its parent-death signal when the thread that forked it ends,
    not only when the web process does: a worker forked from a passing thread (a
    start-up load's, the event loop's executor's) would be killed with that thread.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._jobs = None

    def submit(self, function: Callable[[], None]) -> None:
        with self._lock:
            if self._jobs is None:
                self._jobs = queue.SimpleQueue()
                threading.Thread(target=self._run, name="engine spawner", daemon=True).start()
            self._jobs.put(function)

    def _run(self) -> None:
        while True:
            self._jobs.get()()


_spawner = _Spawner()


@dataclass(frozen=True)
class WorkerSettings:
    """How the web process runs its workers."""

    cache_dir: Path  # where model files are prepared
    log_level: str = "INFO"
    stop_timeout: float = 30.0  # seconds a stopped worker has to finish its generations
    # Below the web process's CPU priority: while an engine computes on every core, the web
    # process still gets the CPU at once for what it has to do (health probes, other
    # streams, a slow client). The engine loses almost nothing: the web process needs
    # little CPU. (Measured /health/live p99 during 4 streams on 2 cores: 45 ms at the
    # same priority, 30 ms with the worker at 10.)
    nice: int = 10
    # A worker whose resident memory passed this many MB after a generation is replaced
    # (0: never). mistral.rs 0.9.5's prefix cache grows without bound (about 18 MB per
    # generation), and a process gives its memory back only when it ends.
    max_rss_mb: int = 0
    hang_limits: HangLimits = HangLimits()


@dataclass(eq=False)
class _Generation:
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue  # TextDelta, Finished, or the error that ends it
    released: Callable[[], None]
    prompt_tokens: int = 0


class ModelWorker:
    """One model's engine process. `ready` resolves to this worker, or fails with WorkerLoadError.

    `on_exit(worker, how)` is called once, from the reader thread, when a worker that was
    ready has ended (stopped or died); a worker that never got ready reports through `ready`.
    """

    def __init__(
        self, config: EngineConfig, settings: WorkerSettings, *, on_exit: Callable[["ModelWorker", str], None]
    ):
        self.config = config
        self.ready: concurrent.futures.Future = concurrent.futures.Future()
        self.pid: int | None = None
        self.load_seconds: float | None = None  # the engine's load, as the worker's handshake reports it
        self.context_length: int | None = None
        self.chat_format: ChatFormat | None = None  # the model file's own chat template, once ready
        self.vocab_size: int | None = None  # token ids below it, once ready (None: unknown)
        self.stopping = False
        self.hang: str | None = None  # why the watchdog killed it, if it did
        self._stop_timeout = settings.stop_timeout
        self._hang_limits = settings.hang_limits
        self._watchdog: Watchdog | None = None  # from Ready on
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._connection: Connection | None = None
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()  # messages for the writer thread; None ends it
        self._writer: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._generations: dict[int, _Generation] = {}
        self._tokenizer_requests: dict[int, concurrent.futures.Future] = {}
        self._ended: str | None = None  # how the process ended, once it has
        self._outbox.put(
            protocol.Load(config=config, cache_dir=settings.cache_dir, log_level=settings.log_level, nice=settings.nice)
        )
        _spawner.submit(self._spawn)

    # --- the process ----------------------------------------------------------------

    def _spawn(self) -> None:
        """Runs on the spawner thread: start the process and the threads that talk to it."""
        with self._lock:
            if self.stopping:
                failure = "the model was unloaded before its engine started"
            else:
                try:
                    self._start_process()
                    failure = None
                except OSError as exc:
                    logger.exception("could not start the engine process of %s", self.config.model_id)
                    failure = f"its engine process could not start: {engine_error_summary(exc)}"
        if failure is not None:
            self.ready.set_exception(WorkerLoadError(failure))
            return
        logger.info("started the engine process of %s (pid %d)", self.config.model_id, self.pid,
                    extra={"model": self.config.model_id, "worker_pid": self.pid})
        threads = [
            threading.Thread(target=target, name=f"engine {name} {self.config.model_id}", daemon=True)
            for target, name in ((self._write, "send"), (self._read, "receive"), (self._forward_logs, "logs"))
        ]
        self._writer = threads[0]
        for thread in threads:
            thread.start()

    def _start_process(self) -> None:
        """The process, with its end of the channel (a socket pair: framed messages both ways)."""
        ours, theirs = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "generation.engine.worker", str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=_worker_environment(),
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()  # the worker's now: its channel closes when the worker ends
        self.pid = self._process.pid
        self._connection = Connection(ours.detach())

    def stop(self) -> None:
        """Let the generations under way finish, then end the process (killed after the stop timeout).

        A worker still loading has nothing to finish: it is killed at once.
        """
        with self._lock:
            if self.stopping:
                return
            self.stopping = True
            if self._process is None:
                return  # not started yet: _spawn will not start it
        if not self.ready.done():
            self._kill()
            return
        self._outbox.put(protocol.Stop())
        timer = threading.Timer(self._stop_timeout, self._kill_if_running)
        timer.daemon = True
        timer.start()

    def _kill_if_running(self) -> None:
        if self._process.poll() is None:
            logger.warning("the engine process of %s (pid %d) did not stop within %s s: killing it",
                           self.config.model_id, self.pid, self._stop_timeout)
            self._kill()

    def _kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()

    def _exited(self) -> str:
        """Reap the process once its channel has closed; how it ended, in words."""
        try:
            code = self._process.wait(timeout=EXIT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self._kill()
            code = self._process.wait()
        if self.hang is not None:
            return f"hung: {self.hang}; killed"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"

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
                    self._receive(self._connection.recv())
                self._watch()
        except (EOFError, OSError):
            pass
        except Exception:  # a message this side cannot take: the worker cannot be trusted any more
            logger.exception("unreadable message from the engine process of %s: killing it", self.config.model_id)
            self._kill()
        self._end(self._exited())

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
            self._kill()

    def silent_seconds(self) -> float:
        """How long the ready worker has sent nothing, not even a heartbeat (0 before it is ready)."""
        watchdog = self._watchdog
        return watchdog.silent_seconds(time.monotonic()) if watchdog is not None else 0.0

    def _receive(self, message) -> None:
        if self._watchdog is not None:
            if isinstance(message, protocol.Heartbeat):
                self._watchdog.heartbeat(message.cpu_seconds, time.monotonic())
                return
            self._watchdog.progress(time.monotonic())
        match message:
            case protocol.Output(id=generation_id, event=event):
                self._deliver(self._generations.get(generation_id), event)
            case protocol.Released(id=generation_id):
                with self._lock:
                    generation = self._generations.pop(generation_id, None)
                if generation is not None:
                    generation.released()
            case protocol.TokenIds(id=request_id, tokens=result) | protocol.DetokenizedText(id=request_id, text=result):
                with self._lock:
                    waiting = self._tokenizer_requests.pop(request_id, None)
                if waiting is not None:
                    _answer(waiting, result=result)
            case protocol.Failed(id=request_id, message=text, invalid_request=invalid_request, field=field):
                error = InvalidRequest(text, field=field) if invalid_request else EngineFailed(text)
                with self._lock:
                    waiting = self._tokenizer_requests.pop(request_id, None)
                if waiting is not None:
                    _answer(waiting, error=error)
                else:
                    self._deliver(self._generations.get(request_id), error)
            case protocol.Ready(load_seconds=load_seconds, context_length=context_length, chat_format=chat_format):
                self.load_seconds, self.context_length, self.chat_format = load_seconds, context_length, chat_format
                self.vocab_size = message.vocab_size
                self._watchdog = Watchdog(self._hang_limits, time.monotonic())
                self.ready.set_result(self)
            case protocol.LoadFailed(message=text):
                self.ready.set_exception(WorkerLoadError(text))

    @staticmethod
    def _deliver(generation: _Generation | None, item) -> None:
        if generation is None:
            return
        try:
            generation.loop.call_soon_threadsafe(generation.events.put_nowait, item)
        except RuntimeError:  # that event loop is closed: nobody is listening any more
            pass

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
            self._deliver(generation, error)
            generation.released()
        for waiting in tokenizer_requests.values():
            _answer(waiting, error=error)

    def _open(self, table: dict, entry) -> int:
        """Register a request on this worker; EngineFailed if the worker takes no more."""
        with self._lock:
            if self._ended is not None:
                raise EngineFailed(f"The engine process of {self.config.model_id} ended ({self._ended}).")
            if self.stopping:
                raise EngineFailed(f"Model {self.config.model_id} was just unloaded; try again.", retry_after=1)
            if not (self._generations or self._tokenizer_requests) and self._watchdog is not None:
                self._watchdog.progress(time.monotonic())  # idle until now: its silence on requests starts here
            request_id = next(self._ids)
            table[request_id] = entry
            return request_id

    async def _ask(self, make_request: Callable[[int], object]):
        """Send a tokenizer request and wait for its answer, holding no thread; forgotten if the caller leaves."""
        answer: concurrent.futures.Future = concurrent.futures.Future()
        request_id = self._open(self._tokenizer_requests, answer)
        self._outbox.put(make_request(request_id))
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

    def rss_mb(self) -> float:
        """The worker process's resident memory (Linux; 0 elsewhere, or once it has ended)."""
        try:
            with open(f"/proc/{self.pid}/statm") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError, IndexError):
            return 0.0

    async def count_tokens(self, text: str) -> int:
        """Tokens of a rendered prompt, as the engine counts them."""
        return len(await self.tokenize(text))

    async def stream(
        self,
        prompt: str,
        sampling: SamplingParams,
        *,
        prompt_tokens: int,
        keep_leading_whitespace: bool,
        released: Callable[[], None],
    ) -> AsyncIterator[TextDelta | Finished]:
        """Text deltas of a rendered prompt, then one Finished. See EngineCache.stream."""
        events: asyncio.Queue = asyncio.Queue()
        try:
            generation_id = self._open(
                self._generations, _Generation(asyncio.get_running_loop(), events, released, prompt_tokens)
            )
        except BaseException:
            released()  # the engine never saw it
            raise
        self._outbox.put(protocol.Generate(generation_id, prompt, prompt_tokens, sampling, keep_leading_whitespace))
        over = False
        try:
            while not over:
                item = await events.get()
                over = isinstance(item, (Finished, Exception))
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            if not over:  # the client left: the worker drops it, or never submits it
                self._outbox.put(protocol.Cancel(generation_id))

    def abort_generations(self, error: Exception) -> None:
        """End each generation under way with `error` now; the worker drops them at their next token.

        Their slots are released when the worker has let them go, as for a client that left.
        """
        with self._lock:
            generations = list(self._generations.items())
        for generation_id, generation in generations:
            self._outbox.put(protocol.Cancel(generation_id))
            self._deliver(generation, error)

    # --- the process's own output -----------------------------------------------------

    def _forward_logs(self) -> None:
        """Log each line the process writes (its JSON records, the engine's text), tagged with the model."""
        fields = {"model": self.config.model_id, "worker_pid": self.pid}
        with self._process.stdout as output:
            for raw in output:
                level, text = parse_worker_line(raw.decode(errors="replace"))
                if text:
                    worker_logger.log(level, "[%s] %s", self.config.model_id, text, extra=fields)


def _answer(waiting: concurrent.futures.Future, *, result=None, error: Exception | None = None) -> None:
    """Settle a tokenizer request's future, unless its caller left (which cancels it) meanwhile."""
    if waiting.set_running_or_notify_cancel():
        if error is not None:
            waiting.set_exception(error)
        else:
            waiting.set_result(result)


def _worker_environment() -> dict:
    """What the worker needs of the web process's environment (WORKER_ENVIRONMENT), with this
    project importable whatever the working directory."""
    path = os.pathsep.join(filter(None, (str(PROJECT_ROOT), os.environ.get("PYTHONPATH"))))
    inherited = {name: value for name, value in os.environ.items() if WORKER_ENVIRONMENT.fullmatch(name)}
    return {**inherited, "PYTHONPATH": path}


def parse_worker_line(line: str) -> tuple[int, str]:
    """The level and text of a line from a worker: one of its JSON records, or the engine's own line.

    Anything else a worker writes (a Rust panic, a traceback that escaped logging) is a warning.
    """
    line = _ANSI_ESCAPE.sub("", line).rstrip()
    if line.startswith("{"):
        try:
            record = json.loads(line)
            return _LEVELS.get(record["level"], logging.INFO), record["message"]
        except (ValueError, KeyError, TypeError):
            pass
    if match := _ENGINE_LINE.match(line):
        return _LEVELS[match.group(1)], match.group(2)
    return logging.WARNING, line
