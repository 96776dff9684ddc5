"""The process-wide state of a server process, owned by one object.

A `Runtime` holds what lives as long as the process: the engine cache (the loaded
models), the concurrency limiter, the start-up loads, the draining flag, the load state
heartbeat and the listener of what other processes tell every process. It is built from
the settings and started by `manage.py serve` (inference_service.management.commands.serve)
before Daphne serves; nothing starts at import time. Code reaches it with `current()`.

Tests build one from its parts and `install` it (the previous one is returned, to put
back); where none was installed (management commands, Django's test client), `current()`
builds one from the settings on first use, and starts nothing.
"""

import logging
import threading

from django.conf import settings
from django.db import transaction

from catalog import snapshot
from catalog.models import ModelEntry
from catalog.selectors import engine_config
from generation.lifecycle import catalog_events, load_state
from generation.core import metrics
from generation.engine.cache import EngineCache
from generation.engine.tracing import TraceExport
from generation.engine.watchdog import HangLimits
from generation.core.limiter import ConcurrencyLimiter
from generation.models import ModelCommand
from generation.lifecycle.startup import StartupLoads

logger = logging.getLogger(__name__)


class Runtime:
    def __init__(
        self,
        *,
        engine_cache: EngineCache,
        limiter: ConcurrencyLimiter,
        heartbeat_seconds: float | None = None,
        listen_to_other_processes: bool = False,
    ):
        """`heartbeat_seconds`: write the load state and pick up commands this often (None: not at all)."""
        self.engine_cache = engine_cache
        self.limiter = limiter
        self.startup_loads = StartupLoads(engine_cache)
        self.draining = threading.Event()
        self.load_state = None
        if heartbeat_seconds is not None:
            self.load_state = load_state.LoadStateReporter(
                interval=heartbeat_seconds,
                states=engine_cache.model_states,
                apply_command=self.apply_command,
                on_beat=snapshot.forget_if_changed,  # another process's catalog change, without Redis
                version=settings.SERVICE_VERSION,
            )
            engine_cache.listeners.append(self.load_state.record_event)
        self.catalog_listener = None
        if listen_to_other_processes:
            self.catalog_listener = catalog_events.CatalogListener(self.handle_message)
        self.started = False

    @classmethod
    def from_settings(cls, *, serving: bool = False) -> "Runtime":
        """The runtime the settings describe; `serving`: with the heartbeat and the listener of a server."""
        cache = EngineCache(
            cache_dir=settings.LLM_MODEL_CACHE_DIR,
            max_loaded=settings.LLM_MAX_LOADED_MODELS,
            stop_timeout=settings.LLM_ENGINE_STOP_TIMEOUT_SECONDS,
            log_level=settings.LOG_LEVEL,
            worker_nice=settings.LLM_ENGINE_WORKER_NICE,
            worker_max_rss_mb=settings.LLM_ENGINE_WORKER_MAX_RSS_MB,
            hang_limits=HangLimits(
                hang_seconds=settings.LLM_ENGINE_HANG_SECONDS, stall_seconds=settings.LLM_ENGINE_STALL_SECONDS
            ),
            # The workers export their spans as this process does (inference_service.telemetry).
            trace_export=TraceExport(settings.OTEL_EXPORTER_OTLP_ENDPOINT, settings.OTEL_SERVICE_NAME)
            if settings.OTEL_EXPORTER_OTLP_ENDPOINT else None,
        )
        metrics.observe_engine_cache(cache)
        limiter = ConcurrencyLimiter(
            max_active=settings.LLM_MAX_CONCURRENT_REQUESTS,
            max_queued=settings.LLM_MAX_QUEUED_REQUESTS,
            timeout=settings.LLM_QUEUE_TIMEOUT_SECONDS,
        )
        metrics.observe_limiter(limiter)
        return cls(
            engine_cache=cache,
            limiter=limiter,
            heartbeat_seconds=settings.LLM_HEARTBEAT_SECONDS if serving else None,
            listen_to_other_processes=serving and bool(settings.REDIS_URL),
        )

    def start(self) -> None:
        """Start the background work of a server: the start-up loads, the heartbeat, the listener."""
        if self.started:
            return
        self.started = True
        self.startup_loads.start()
        if self.load_state is not None:
            self.load_state.start()
        if self.catalog_listener is not None:
            self.catalog_listener.start()

    def stop(self) -> None:
        """At the server's end: the heartbeat stops, and this process's load state rows go."""
        if self.load_state is not None:
            self.load_state.stop()

    # --- what the catalog, the admin and other processes ask of this process ---------------

    def withdraw(self, model_id: str) -> None:
        """A model left the catalog (disabled or deleted): unload it here, and in every process."""
        self.engine_cache.unload(model_id)
        catalog_events.tell_every_process({"type": "model.withdrawn", "model_id": model_id})

    def issue_command(self, *, model_id: str, action: str, issued_by: str = "") -> ModelCommand:
        """The admin's "load now", "unload" or "reload" of a model, for every process (this one
        included): recorded for each process's heartbeat, which applies it; with Redis, each
        process is told at once."""
        command = load_state.create_command(model_id=model_id, action=action, issued_by=issued_by)
        if self.load_state is not None:
            self.load_state.wake()
        catalog_events.tell_every_process({"type": "model.command", "command_id": command.id})
        return command

    def apply_command(self, action: str, model_id: str) -> None:
        """Apply one command in this process; a load is started, not waited for."""
        if action in (ModelCommand.Action.UNLOAD, ModelCommand.Action.RELOAD):
            self.engine_cache.unload(model_id)
        if action in (ModelCommand.Action.LOAD, ModelCommand.Action.RELOAD):
            entry = ModelEntry.objects.filter(model_id=model_id).first()
            if entry is None:
                logger.warning("%s of model %s: not in the catalog", action, model_id)
                return
            self.engine_cache.load_now(engine_config(entry))

    def handle_message(self, message: dict) -> None:
        """A message sent to every process (catalog_events)."""
        if message.get("type") == "model.withdrawn":
            if self.engine_cache.unload(message["model_id"]):
                logger.info("unloaded model %s: withdrawn from the catalog", message["model_id"])
        elif message.get("type") == "model.command" and self.load_state is not None:
            self.load_state.wake()  # the heartbeat reads the command from the database
        elif message.get("type") == "catalog.changed":
            snapshot.forget()


_current: Runtime | None = None
_current_lock = threading.Lock()


def current() -> Runtime:
    """The runtime of this process (one built from the settings, not started, if none was installed)."""
    global _current
    with _current_lock:
        if _current is None:
            _current = Runtime.from_settings()
        return _current


def install(runtime: Runtime | None) -> Runtime | None:
    """Make `runtime` the one `current()` returns; returns the previous one (None: build on first use)."""
    global _current
    with _current_lock:
        previous, _current = _current, runtime
        return previous


# Receivers of the catalog's signals (of its entries and service settings), connected by generation.apps.


def tell_every_process_the_catalog_changed(sender, **kwargs):
    # This process forgets its own catalog itself (catalog.snapshot); the others are told, with Redis.
    transaction.on_commit(lambda: catalog_events.tell_every_process({"type": "catalog.changed"}))


def withdraw_disabled_model(sender, instance: ModelEntry, **kwargs):
    if not instance.enabled:
        current().withdraw(instance.model_id)


def withdraw_deleted_model(sender, instance: ModelEntry, **kwargs):
    current().withdraw(instance.model_id)
