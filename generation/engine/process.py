"""A model's worker process, supervised from the web process: started from one thread that
lives as long as the web process, with only the environment it needs, below the web
process's CPU priority; stopped, killed, reaped, and its memory read.

generation.engine.channel speaks to it; generation.engine.logs logs what it writes.
"""

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from generation.engine.tracing import TraceExport
from generation.engine.watchdog import HangLimits

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# After its channel closed, how long a process may take to exit before it is killed.
EXIT_GRACE_SECONDS = 5
# The environment a worker gets from the web process: what the engine, its libraries and
# Python read (threads, caches, the hub, CUDA, locale), never the service's secrets
# (DJANGO_SECRET_KEY, DATABASE_URL, REDIS_URL...).
WORKER_ENVIRONMENT = re.compile(
    r"PATH|HOME|USER|LANG|LC_\w+|TZ|TMPDIR|PYTHON\w*|LD_LIBRARY_PATH|SSL_CERT_\w+|XDG_CACHE_HOME"
    r"|HF_\w+|HUGGINGFACE_\w+|RAYON_\w+|OMP_\w+|MKL_\w+|OPENBLAS_\w+|CUDA_\w+|NVIDIA_\w+|MISTRALRS_\w+|RUST_\w+"
    r"|OTEL_\w+"  # the trace exporter's own settings (headers, timeout, batching), as the web process has them
)


class WorkerLoadError(Exception):
    """The worker did not become ready; the message is for clients (no server paths)."""


class WorkerReplaced(Exception):
    """A request for a worker stopped for a replacement, for the replacement (its argument)."""


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
    trace_export: TraceExport | None = None  # where a worker sends its spans; None: it makes none


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


spawner = _Spawner()


class WorkerProcess:
    """One worker process: `start()` it (on the spawner's thread), then kill or reap it."""

    def __init__(self):
        self.pid: int | None = None
        self._popen: subprocess.Popen | None = None

    @property
    def started(self) -> bool:
        return self._popen is not None

    @property
    def output(self):
        """What the process writes (its standard output and error, together), as bytes lines."""
        return self._popen.stdout

    def start(self) -> Connection:
        """Start the process; its end of the channel (a socket pair: framed messages both ways)."""
        ours, theirs = socket.socketpair()
        try:
            self._popen = subprocess.Popen(
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
        self.pid = self._popen.pid
        return Connection(ours.detach())

    def running(self) -> bool:
        return self._popen.poll() is None

    def kill(self) -> None:
        if self.running():
            self._popen.kill()

    def reap(self) -> str:
        """Wait for the process once its channel has closed (killed after a grace); how it ended, in words."""
        try:
            code = self._popen.wait(timeout=EXIT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self._popen.wait()
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"

    def rss_mb(self) -> float:
        """The process's resident memory (Linux; 0 elsewhere, or once it has ended)."""
        try:
            with open(f"/proc/{self.pid}/statm") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError, IndexError):
            return 0.0


def _worker_environment() -> dict:
    """What the worker needs of the web process's environment (WORKER_ENVIRONMENT), with this
    project importable whatever the working directory."""
    path = os.pathsep.join(filter(None, (str(PROJECT_ROOT), os.environ.get("PYTHONPATH"))))
    inherited = {name: value for name, value in os.environ.items() if WORKER_ENVIRONMENT.fullmatch(name)}
    return {**inherited, "PYTHONPATH": path}
