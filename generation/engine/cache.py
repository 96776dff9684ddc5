"""The models of this process: one worker process per loaded model, started on demand.

A model is started on its first request (or at start-up), once: requests that arrive
while it starts wait for the same start, and a start for another configuration of the
same model waits for the one under way. The least recently used model is stopped past
`max_loaded`; a model is stopped when it is withdrawn from the catalog (`unload`), and
replaced when its engine settings change (the next request brings the new
configuration). Stopping the process is how its memory is given back.

A worker whose memory passed `worker_max_rss_mb` after a generation (the engine's prefix
cache is not bounded) is replaced without a gap: a new worker of the same configuration
loads in the background while the old one serves, then takes the model's requests, and
the old one stops once its generations are over. If the new one fails to load, the old
one serves on, and the next try waits for a back-off. A replacement already over the limit
when it is ready is kept: a limit below a fresh worker's memory does not loop.

A configuration that failed to load is not tried again before its back-off has passed
(doubling from `retry_after_failure` up to `max_retry_after_failure`): requests meanwhile
get the same error at once, instead of each starting a process that fails again. A
changed configuration is tried at once. A worker that dies is forgotten at once: its
generations end with an error, and the next request starts a new one. So is a worker
that hangs (generation.engine.watchdog), once it has been killed; while it is silent,
before that, its model's state is "unresponsive".
"""

import asyncio
import concurrent.futures
import dataclasses
import logging
import math
import threading
import time
import weakref
from collections import Counter, OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from catalog.engine_settings import EngineConfig
from common.errors import ModelUnavailable
from generation.engine.channel import ModelWorker
from generation.engine.process import WorkerSettings
from generation.engine.tracing import TraceExport
from generation.engine.watchdog import HEARTBEAT_SECONDS, HangLimits

# A loaded model's worker silent this long is reported "unresponsive" (before the watchdog's
# hang_seconds, when it is killed): a few heartbeats missed.
UNRESPONSIVE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class ModelState:
    """Where a model stands in this process, for readiness, metrics and logs."""

    state: str  # "loading", "loaded", "unresponsive", "failed", "stopped" or "crashed"
    error: str | None = None  # why it failed or crashed, for clients
    load_seconds: float | None = None  # the engine's load, as its worker reported it
    pid: int | None = None  # its worker process, while loaded


@dataclass(eq=False)
class _Start:
    config: EngineConfig
    worker: ModelWorker
    replaces: ModelWorker | None = None  # a worker over the memory limit, which serves until this one is ready
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    began: float = field(default_factory=time.perf_counter)


class EngineCache:
    """Loaded models of this process, keyed by model id, each in its own worker process.

    `listeners` are called as `listener(event, model_id, seconds)` on each change of a
    model's state: "loading", "loaded" (with the seconds until it could serve),
    "load_failed", "stopped", "crashed", and "hung" (before its "crashed", for a worker
    that the watchdog killed).
    """

    def __init__(
        self,
        *,
        cache_dir: Path,
        max_loaded: int,
        retry_after_failure: float = 10.0,
        max_retry_after_failure: float = 300.0,
        stop_timeout: float = 30.0,
        log_level: str = "INFO",
        worker_nice: int = 10,
        worker_max_rss_mb: int = 0,
        hang_limits: HangLimits = HangLimits(),
        trace_export: TraceExport | None = None,
    ):
        self.cache_dir = Path(cache_dir)
        self.max_loaded = max_loaded
        self.retry_after_failure = retry_after_failure
        self.max_retry_after_failure = max_retry_after_failure
        self.worker_settings = WorkerSettings(
            cache_dir=self.cache_dir, log_level=log_level, stop_timeout=stop_timeout, nice=worker_nice,
            max_rss_mb=worker_max_rss_mb, hang_limits=hang_limits, trace_export=trace_export,
        )
        self._lock = threading.Lock()
        self._workers: OrderedDict[str, ModelWorker] = OrderedDict()
        self._starting: dict[str, _Start] = {}
        self._states: dict[str, ModelState] = {}
        self.failures: dict[str, LoadFailure] = {}
        self._replacement_failures: dict[str, LoadFailure] = {}  # replacements that failed to load, for their back-off
        # Replacements already over the memory limit when they were ready: replacing them again would not help.
        self._kept: weakref.WeakSet[ModelWorker] = weakref.WeakSet()
        self.load_counts: Counter[str] = Counter()
        self.listeners: list = []
        # Every worker still alive, stopping ones included (they finish their generations).
        self._all_workers: weakref.WeakSet[ModelWorker] = weakref.WeakSet()

    # --- loading ---------------------------------------------------------------------

    def _load_future(self, config: EngineConfig) -> concurrent.futures.Future:
        with self._lock:
            worker = self._workers.get(config.model_id)
            if worker is not None and worker.config == config:
                self._workers.move_to_end(config.model_id)
                return _resolved(worker)
            start = self._starting.get(config.model_id)
            if start is not None and start.config == config:
                return start.future
            if start is None:
                failure = self.failures.get(config.model_id)
                if failure is not None and failure.config == config and failure.retry_in() > 0:
                    return _failed(failure.error())
                start = self._begin(config)
                under_way = None
            else:
                under_way, start = start, None
        if under_way is not None:
            # One start per model at a time: this configuration's begins when that one is over.
            after = concurrent.futures.Future()
            under_way.future.add_done_callback(lambda _: _chain(self._load_future(config), after))
            return after
        logger.info("loading model %s", config.model_id, extra={"model": config.model_id})
        self._notify("loading", config.model_id, 0.0)
        start.worker.ready.add_done_callback(lambda _: self._started(start))
        return start.future

    def _begin(self, config: EngineConfig, replaces: ModelWorker | None = None) -> _Start:
        """With the lock held: start a worker for this configuration (the model stays "loaded" while a
        replacement loads)."""
        worker = ModelWorker(
            config, self.worker_settings, on_exit=self._worker_ended, on_released=self._replace_if_over_memory
        )
        self._all_workers.add(worker)
        start = _Start(config=config, worker=worker, replaces=replaces)
        self._starting[config.model_id] = start
        self.load_counts[config.model_id] += 1
        if replaces is None:
            self._states[config.model_id] = ModelState("loading")
        return start

    def _started(self, start: _Start) -> None:
        """The worker of `start` is ready, or will never be."""
        model_id, worker = start.config.model_id, start.worker
        error = worker.ready.exception()
        seconds = time.perf_counter() - start.began
        replaced, evicted, dropped = None, [], []
        with self._lock:
            if self._starting.get(model_id) is start:
                del self._starting[model_id]
            keeps_serving = start.replaces is not None and self._workers.get(model_id) is start.replaces
            if worker.stopping:
                outcome = ModelUnavailable(f"Model {model_id} was unloaded while it loaded.", retry_after=1)
            elif error is not None and keeps_serving:
                outcome = self._next_failure(self._replacement_failures, start.config, str(error)).error()
            elif error is not None:
                outcome = self._record_failure(start.config, f"Model {model_id} could not be loaded: {error}").error()
            else:
                outcome = worker
                replaced = self._workers.pop(model_id, None)  # its previous configuration, or the worker it replaces
                self._workers[model_id] = worker
                while len(self._workers) > self.max_loaded:
                    evicted_id, evicted_worker = self._workers.popitem(last=False)
                    self._states[evicted_id] = ModelState("stopped")
                    evicted.append(evicted_worker)
                    if (under_way := self._starting.get(evicted_id)) and under_way.replaces is evicted_worker:
                        dropped.append(self._starting.pop(evicted_id).worker)  # its replacement is not wanted now
                self.failures.pop(model_id, None)
                self._replacement_failures.pop(model_id, None)
                self._states[model_id] = ModelState("loaded", load_seconds=worker.load_seconds, pid=worker.pid)
        if outcome is not worker:
            if worker.stopping:
                pass  # unloaded: said when it was
            elif keeps_serving:
                logger.error("the replacement of the engine process of %s failed to load (%s); pid %d keeps serving",
                             model_id, error, start.replaces.pid, extra={"model": model_id})
            else:
                logger.error("model %s failed to load: %s", model_id, error, extra={"model": model_id})
                self._notify("load_failed", model_id, seconds)
            start.future.set_exception(outcome)
            return
        if replaced is not None:
            replaced.stop(replaced_by=worker)  # its generations finish; a request that got it just before comes here
        for stopped in evicted + dropped:
            stopped.stop()
        for stopped in evicted:
            logger.info("unloaded model %s (least recently used)", stopped.config.model_id,
                        extra={"model": stopped.config.model_id})
            self._notify("stopped", stopped.config.model_id, 0.0)
        logger.info(
            "loaded model %s in %.1f s (the engine's load: %.1f s, in worker pid %d)",
            model_id, seconds, worker.load_seconds, worker.pid,
            extra={"model": model_id, "worker_pid": worker.pid, "load_seconds": worker.load_seconds},
        )
        if start.replaces is not None:
            self._check_replacement(start.replaces, worker)
        self._notify("loaded", model_id, seconds)
        start.future.set_result(worker)

    def _record_failure(self, config: EngineConfig, message: str) -> LoadFailure:
        """With the lock held: the failure of this configuration's load, its back-off doubled if it failed before."""
        failure = self._next_failure(self.failures, config, message)
        self._states[config.model_id] = ModelState("failed", error=message)
        return failure

    def _next_failure(self, failures: dict[str, LoadFailure], config: EngineConfig, message: str) -> LoadFailure:
        """With the lock held: a failed load of `config` into `failures`, its back-off doubled if it failed before."""
        previous = failures.get(config.model_id)
        backoff = self.retry_after_failure
        if previous is not None and previous.config == config:
            backoff = min(previous.backoff * 2, self.max_retry_after_failure)
        failure = LoadFailure(config=config, message=message, backoff=backoff, retry_at=time.monotonic() + backoff)
        failures[config.model_id] = failure
        return failure

    def _worker_ended(self, worker: ModelWorker, how: str) -> None:
        """A worker that was ready has ended: stopped as asked, or died."""
        model_id = worker.config.model_id
        if worker.stopping:
            return  # its model's state changed when it was stopped
        message = f"The engine process of {model_id} ended unexpectedly ({how})."
        with self._lock:
            if self._workers.get(model_id) is worker:
                del self._workers[model_id]
            start = self._starting.get(model_id)
            if start is None or start.replaces is worker:  # a replacement under way serves when it is ready
                self._states[model_id] = ModelState("crashed", error=message)
        logger.error("%s Its generations ended with an error; the next request starts a new one.", message,
                     extra={"model": model_id, "worker_pid": worker.pid})
        if worker.hang is not None:
            self._notify("hung", model_id, 0.0)
        self._notify("crashed", model_id, 0.0)

    def _notify(self, event: str, model_id: str, seconds: float) -> None:
        for listener in self.listeners:
            listener(event, model_id, seconds)

    async def get(self, config: EngineConfig) -> ModelWorker:
        """The loaded model for this configuration, starting (or restarting) its worker if needed."""
        return await asyncio.wrap_future(self._load_future(config))

    def load(self, config: EngineConfig) -> ModelWorker:
        """Blocking form of `get`, for start-up and management commands."""
        return self._load_future(config).result()

    def load_now(self, config: EngineConfig) -> concurrent.futures.Future:
        """Start loading this configuration now, its back-off after a failure forgotten (the
        admin's "load now"); the future is done when it has loaded or failed."""
        with self._lock:
            failure = self.failures.get(config.model_id)
            if failure is not None and failure.config == config:
                # Its back-off is kept (doubled if it fails again); only the wait is over.
                self.failures[config.model_id] = dataclasses.replace(failure, retry_at=time.monotonic())
        return self._load_future(config)

    def unload(self, model_id: str) -> bool:
        """Stop a model's worker (once its generations under way are over), and a start under way.

        True when the model was loaded.
        """
        with self._lock:
            self.failures.pop(model_id, None)
            worker = self._workers.pop(model_id, None)
            start = self._starting.pop(model_id, None)
            stopping = [w for w in (worker, start.worker if start else None) if w is not None]
            if stopping:
                self._states[model_id] = ModelState("stopped")
        for stopped in stopping:
            stopped.stop()
        if stopping:
            logger.info("unloaded model %s", model_id, extra={"model": model_id})
            self._notify("stopped", model_id, 0.0)
        return worker is not None

    def loaded_model_ids(self) -> list[str]:
        with self._lock:
            return list(self._workers)

    def context_length(self, model_id: str) -> int | None:
        """The context length of a loaded model, as its engine reported it (None if not loaded)."""
        with self._lock:
            worker = self._workers.get(model_id)
            return worker.context_length if worker is not None else None

    def model_states(self) -> dict[str, dict]:
        """Each model this process has loaded or tried to: its state, and its error or load time."""
        with self._lock:
            states = dict(self._states)
            workers = dict(self._workers)
        for model_id, worker in workers.items():
            silent = worker.silent_seconds()
            if silent > UNRESPONSIVE_AFTER_SECONDS and states[model_id].state == "loaded":
                states[model_id] = dataclasses.replace(
                    states[model_id], state="unresponsive",
                    error=f"The engine process of {model_id} has not answered for {silent:.0f} s.",
                )
        return {model_id: asdict(state) for model_id, state in states.items()}

    def failure(self, config: EngineConfig) -> "LoadFailure | None":
        """The last failed load of this very configuration, if it has not loaded since."""
        with self._lock:
            failure = self.failures.get(config.model_id)
            return failure if failure is not None and failure.config == config else None

    # --- generation ------------------------------------------------------------------

    def _replace_if_over_memory(self, model: ModelWorker) -> None:
        """After a generation: start a replacement for a worker whose memory passed the limit. It serves until
        the replacement is ready, then stops once its generations are over, as for any unload; if the
        replacement fails to load, it serves on (the next try after a back-off)."""
        limit = self.worker_settings.max_rss_mb
        if not limit or model in self._kept or (rss := model.rss_mb()) <= limit:
            return
        model_id = model.config.model_id
        with self._lock:
            if self._workers.get(model_id) is not model or model_id in self._starting:
                return  # being replaced already, or stopped
            failure = self._replacement_failures.get(model_id)
            if failure is not None and failure.config == model.config and failure.retry_in() > 0:
                return
            start = self._begin(model.config, replaces=model)
        logger.warning(
            "the engine process of %s (pid %d) uses %.0f MB, over LLM_ENGINE_WORKER_MAX_RSS_MB (%d): loading its "
            "replacement; it serves until then", model_id, model.pid, rss, limit,
            extra={"model": model_id, "worker_pid": model.pid},
        )
        start.worker.ready.add_done_callback(lambda _: self._started(start))

    def _check_replacement(self, old: ModelWorker, new: ModelWorker) -> None:
        """A replacement took over; one already over the limit is kept (another would not do better)."""
        rss, limit = new.rss_mb(), self.worker_settings.max_rss_mb
        logger.info("the engine process of %s (pid %d) replaced pid %d, which stops once its generations are over",
                    new.config.model_id, new.pid, old.pid, extra={"model": new.config.model_id, "worker_pid": new.pid})
        if rss > limit:
            self._kept.add(new)
            logger.warning(
                "the new engine process of %s uses %.0f MB as it starts, over LLM_ENGINE_WORKER_MAX_RSS_MB (%d): it "
                "will not be replaced (raise the limit)", new.config.model_id, rss, limit,
                extra={"model": new.config.model_id, "worker_pid": new.pid},
            )

    def abort_streams(self, error: Exception) -> None:
        """End every generation of every worker with `error` (a shutdown whose grace is over)."""
        with self._lock:
            workers = list(self._all_workers)
        for worker in workers:
            worker.abort_generations(error)


def _resolved(value) -> concurrent.futures.Future:
    future = concurrent.futures.Future()
    future.set_result(value)
    return future


def _failed(error: BaseException) -> concurrent.futures.Future:
    future = concurrent.futures.Future()
    future.set_exception(error)
    return future


def _chain(source: concurrent.futures.Future, target: concurrent.futures.Future) -> None:
    source.add_done_callback(
        lambda done: target.set_exception(done.exception()) if done.exception() else target.set_result(done.result())
    )
