"""A model's worker process: `python -m generation.engine.worker CHANNEL_FD PARENT_PID`.

Started by the web process (generation.engine.process), one per loaded model, like
Ollama's runner per model or vLLM's engine core process. Here the engine may hold the
GIL for a whole load, abort, or keep memory it never gives back: the web process stays
responsive, loses only this model's streams, and gets the memory back by ending the
process.

It receives its Load over the channel, loads the engine, answers Ready (with the load
time) or LoadFailed, then serves the web process's messages (generation.engine.protocol):
each generation in a thread of its own, tokens sent as they come (those that come together,
in one frame: `Worker.send`). It ends when it is
told to Stop (once the generations under way are over), when the channel closes, and,
on Linux, when the web process dies, even by kill -9 (PR_SET_PDEATHSIG).

Its log records go to standard error as JSON lines; the engine writes its own lines to
standard output. The web process reads both and logs them, tagged with the model id. When
tracing is on, it exports the spans of each traced generation's phases itself
(generation.engine.tracing).
"""

import ctypes
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection

from common.errors import ServiceError
from generation.engine import protocol
from generation.engine.tracing import GenerationPhases, otlp_tracer_provider
from generation.engine.types import engine_error_summary
from generation.engine.runner import LoadedEngine, load_engine
from generation.engine.watchdog import HEARTBEAT_SECONDS

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# While stopping, how often the loop looks whether the last generation has ended.
STOP_POLL_SECONDS = 0.05


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when the web process dies, however it dies.

    The channel's end tells the main loop too, but not while a load holds the GIL.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the web process died before prctl: no signal will come
        os._exit(1)


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record, a traceback included, so that the web process logs it as one record."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return json.dumps({"level": record.levelname, "logger": record.name, "message": message})


class Worker:
    """Serves one loaded engine to the web process over the channel."""

    def __init__(self, engine: LoadedEngine, connection: Connection, *, tracer=None):
        self.engine = engine
        self.connection = connection
        self.tracer = tracer  # None: tracing off
        self._send_lock = threading.Lock()  # held by the thread that writes a frame
        self._unsent: deque = deque()  # messages waiting for the next frame
        self._cancelled: dict[int, threading.Event] = {}  # the generations under way, by id
        self._stopping = False

    def send(self, message) -> None:
        """Send a message in the next frame (a tuple of messages) without waiting for any other.

        An engine step wakes the threads of all its generations at once: while one thread writes
        a frame, the others leave their tokens here and go back to the engine, and the writer
        sends them all in its next frame. A message is never held back: whoever finds the
        channel free writes at once, and the writer looks again after each frame.
        """
        self._unsent.append(message)
        # A thread that finds the lock taken leaves: its message was queued before the writer
        # releases the lock, so the writer, which looks at the queue after releasing, sends it.
        while self._unsent and self._send_lock.acquire(blocking=False):
            try:
                self._write_unsent()
            finally:
                self._send_lock.release()

    def _write_unsent(self) -> None:
        frame = []
        while self._unsent:
            frame.append(self._unsent.popleft())
        try:
            self.connection.send(tuple(frame))
        except OSError:  # the web process is gone; the main loop sees the channel close and exits
            pass

    def flush(self) -> None:
        """Wait for the frame being written, and send whatever is left: before the process exits."""
        with self._send_lock:
            if self._unsent:
                self._write_unsent()

    def serve(self) -> None:
        """Handle messages until told to stop (and the generations under way are over) or the channel closes."""
        threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()
        while not (self._stopping and not self._cancelled):
            if self._stopping and not self.connection.poll(STOP_POLL_SECONDS):
                continue
            try:
                message = self.connection.recv()
            except EOFError:
                logger.info("the web process closed the channel: exiting")
                return
            match message:
                case protocol.Generate():
                    self._start(message)
                case protocol.Cancel(id=generation_id):
                    if (cancelled := self._cancelled.get(generation_id)) is not None:
                        cancelled.set()
                case protocol.Tokenize() | protocol.Detokenize():
                    threading.Thread(target=self._tokenizer, args=(message,), name="tokenizer", daemon=True).start()
                case protocol.Stop():
                    logger.info("stopping once %d generations are over", len(self._cancelled))
                    self._stopping = True

    def _beat(self) -> None:
        """Tell the web process, every second, that this process runs and how much CPU it used."""
        while True:
            times = os.times()
            self.send(protocol.Heartbeat(cpu_seconds=times.user + times.system))
            time.sleep(HEARTBEAT_SECONDS)

    def _start(self, request: protocol.Generate) -> None:
        cancelled = threading.Event()
        self._cancelled[request.id] = cancelled
        phases = None
        if self.tracer is not None and request.traceparent is not None:
            phases = GenerationPhases(self.tracer, request.traceparent, model_id=self.engine.config.model_id)
        threading.Thread(
            target=self._generate, args=(request, cancelled, phases), name=f"generate {request.id}", daemon=True
        ).start()

    def _generate(self, request: protocol.Generate, cancelled: threading.Event, phases: GenerationPhases | None):
        """Admit the request (count its prompt's tokens, fit it to the context), then generate.

        On this generation's own thread, so that the receiving loop never waits for the
        tokenizer (which waits for the engine's step under way).
        """
        error = None
        try:
            prompt_tokens, sampling = self.engine.admit(request.prompt, request.sampling)
            self.send(protocol.Admitted(request.id, prompt_tokens, sampling.max_tokens))
            if phases is not None:
                phases.admitted(prompt_tokens)
            events = self.engine.generate(
                request.prompt,
                sampling,
                prompt_tokens=prompt_tokens,
                keep_leading_whitespace=request.keep_leading_whitespace,
                cancelled=cancelled,
                phases=phases,
            )
            for event in events:
                self.send(protocol.Output(request.id, event))
        except ServiceError as exc:  # a refusal (the prompt over the context), a JSON schema the engine refused...
            error = exc.message
            self.send(protocol.Failed(request.id, exc.message, code=exc.code, field=exc.field))
        except Exception as exc:  # engine errors end this generation only
            logger.exception("generation failed")
            error = f"The engine failed: {engine_error_summary(exc)}"
            self.send(protocol.Failed(request.id, error))
        finally:
            if phases is not None:
                phases.end(error=error)  # unless it finished
            # The engine's stream is dropped: the engine lets the sequence go at its next step.
            self.send(protocol.Released(request.id))
            del self._cancelled[request.id]

    def _tokenizer(self, request: protocol.Tokenize | protocol.Detokenize) -> None:
        try:
            if isinstance(request, protocol.Tokenize):
                self.send(protocol.TokenIds(request.id, tuple(self.engine.tokenize(request.text))))
            else:
                self.send(protocol.DetokenizedText(request.id, self.engine.detokenize(list(request.tokens))))
        except Exception as exc:
            logger.exception("the tokenizer failed")
            self.send(protocol.Failed(request.id, f"The engine failed: {engine_error_summary(exc)}"))


def main(channel_fd: int, parent_pid: int) -> None:
    die_with_parent(parent_pid)
    connection = Connection(channel_fd)
    load: protocol.Load = connection.recv()
    os.nice(load.nice)  # before the engine starts its threads, which inherit it
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    logging.basicConfig(level=load.log_level, handlers=[handler])
    try:
        engine = load_engine(load.config, load.cache_dir)
    except Exception as exc:  # reported to the web process, which keeps serving other models
        logger.exception("the model failed to load")
        connection.send((protocol.LoadFailed(engine_error_summary(exc)),))
        return
    tracing = otlp_tracer_provider(load.trace_export) if load.trace_export is not None else None
    logger.info("loaded in %.1f s", engine.load_seconds)
    connection.send((
        protocol.Ready(
            load_seconds=engine.load_seconds, context_length=engine.context_length, chat_format=engine.chat_format,
            vocab_size=engine.vocab_size,
        ),
    ))
    worker = Worker(engine, connection, tracer=tracing.get_tracer(__name__) if tracing else None)
    worker.serve()
    worker.flush()  # the last Released may still be in another thread's frame
    if tracing is not None:
        tracing.shutdown()  # exports the spans still in its batch


if __name__ == "__main__":
    main(channel_fd=int(sys.argv[1]), parent_pid=int(sys.argv[2]))
    sys.stdout.flush()
    sys.stderr.flush()
    # Neither the engine's threads nor its destructors are waited for: the process's memory goes with it.
    os._exit(0)
