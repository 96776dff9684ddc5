"""The load state of this process's models, in the database, with a heartbeat; and the
admin's commands, picked up by every process.

The engine cache calls `LoadStateReporter.record_event` on each change of a model's state,
from whatever thread made the change (the event loop's included): it only notes the
change and wakes the heartbeat thread, which does every database write. Each beat (every
LLM_HEARTBEAT_SECONDS, and at once after a change or a wake-up):

1. registers this process (a `ServerProcess` row) if it has no row (at its first beat, or
   after its row was cleaned while it could not reach the database);
2. writes the noted state changes, and the heartbeat;
3. applies the commands issued since its last beat (never those older than its start),
   through `apply_command`;
4. deletes the rows of processes gone for long, and old commands.

The database may be down: a beat that fails is logged and tried again at the next one; the
changes noted meanwhile are kept (the latest per model).
"""

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, connections, transaction
from django.db.models import Max
from django.utils import timezone

from generation.models import ModelCommand, ModelLoadState, ServerProcess

logger = logging.getLogger(__name__)

# Rows of processes gone this long, and commands this old, are deleted.
RETENTION = timedelta(hours=1)

# The engine cache's states (EngineCache.model_states) and events (its listeners'), as load states.
LOAD_STATE = {
    "loading": ModelLoadState.State.LOADING,
    "loaded": ModelLoadState.State.LOADED,
    "failed": ModelLoadState.State.FAILED,
    "load_failed": ModelLoadState.State.FAILED,  # the event of the state "failed"
    "crashed": ModelLoadState.State.FAILED,
    "stopped": ModelLoadState.State.UNLOADED,
}


@dataclass(frozen=True)
class StateChange:
    state: str
    error: str
    at: datetime


class LoadStateReporter:
    """One process's row, its models' states and its heartbeat; and the commands it applies.

    `states` returns the engine cache's view of each model (`EngineCache.model_states`):
    a failure's error is read there. `apply_command(action, model_id)` applies one command
    in this process; it is called from the heartbeat thread and must not wait for a load.
    """

    def __init__(
        self,
        *,
        interval: float,
        states: Callable[[], dict[str, dict]],
        apply_command: Callable[[str, str], None],
        on_beat: Callable[[], None] = lambda: None,
        version: str = "",
        host: str | None = None,
        pid: int | None = None,
    ):
        self.interval = interval
        self.version = version
        self.host = host or socket.gethostname()
        self.pid = pid or os.getpid()
        self.started_at = timezone.now()
        self._states = states
        self._apply_command = apply_command
        self._on_beat = on_beat
        self._lock = threading.Lock()
        self._pending: dict[str, StateChange] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.process: ServerProcess | None = None
        self.last_command_id: int | None = None  # None until the start's latest command is known

    # --- called by the engine cache, from any thread: no database here -------------------

    def record_event(self, event: str, model_id: str, seconds: float = 0.0) -> None:
        """An EngineCache listener."""
        state = LOAD_STATE.get(event)
        if state is None:
            return
        error = ""
        if state == ModelLoadState.State.FAILED:
            error = (self._states().get(model_id) or {}).get("error") or ""
        with self._lock:
            self._pending[model_id] = StateChange(state, error, timezone.now())
        self.wake()

    def wake(self) -> None:
        """Beat now, rather than at the end of the interval (a change, or a new command)."""
        self._wake.set()

    # --- the heartbeat thread ------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="load state heartbeat", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop beating and delete this process's row (its models are going with it)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    self.beat()
                except DatabaseError as exc:
                    logger.warning("load state not written (%s); trying again in %.0f s", exc, self.interval)
                    connections.close_all()  # a fresh connection next time
                except Exception:
                    logger.exception("load state heartbeat failed")
                self._wake.wait(self.interval)
            self._unregister()
        finally:
            connections.close_all()  # this thread's own

    def beat(self) -> None:
        """One heartbeat: register, write the changes and the heartbeat, apply new commands, `on_beat`, clean."""
        now = timezone.now()
        if self.process is None or not ServerProcess.objects.filter(pk=self.process.pk).update(last_heartbeat=now):
            self._register(now)
        self._write_changes()
        self._apply_new_commands()
        self._on_beat()
        ServerProcess.objects.filter(last_heartbeat__lt=now - RETENTION).delete()
        ModelCommand.objects.filter(issued_at__lt=now - RETENTION).delete()

    def _register(self, now: datetime) -> None:
        with transaction.atomic():
            self.process = ServerProcess.objects.create(
                host=self.host, pid=self.pid, version=self.version, started_at=self.started_at, last_heartbeat=now
            )
            if self.last_command_id is None:
                # Commands issued before this process started are not replayed.
                self.last_command_id = ModelCommand.objects.aggregate(latest=Max("id"))["latest"] or 0
        # Everything the engine cache knows so far; later changes are noted on top.
        with self._lock:
            for model_id, state in self._states().items():
                self._pending.setdefault(model_id, _change_of(state, now))

    def _write_changes(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        try:
            for model_id, change in pending.items():
                ModelLoadState.objects.update_or_create(
                    process=self.process,
                    model_id=model_id,
                    defaults={"state": change.state, "error": change.error, "changed_at": change.at},
                )
        except DatabaseError:
            with self._lock:  # kept for the next beat, unless a newer change came meanwhile
                self._pending = {**pending, **self._pending}
            raise

    def _apply_new_commands(self) -> None:
        commands = list(ModelCommand.objects.filter(id__gt=self.last_command_id).order_by("id"))
        for command in commands:
            self.last_command_id = command.id
            logger.info("applying %s of model %s, issued by %s", command.action, command.model_id,
                        command.issued_by or "?", extra={"model": command.model_id})
            try:
                self._apply_command(command.action, command.model_id)
            except Exception:
                logger.exception("%s of model %s failed", command.action, command.model_id)

    def _unregister(self) -> None:
        if self.process is not None:
            try:
                ServerProcess.objects.filter(pk=self.process.pk).delete()
            except DatabaseError as exc:
                logger.warning("this process's load state row not deleted (%s)", exc)


def _change_of(cache_state: dict, now: datetime) -> StateChange:
    return StateChange(LOAD_STATE.get(cache_state["state"], cache_state["state"]),
                       cache_state.get("error") or "", now)


# --- for the admin -----------------------------------------------------------------------


def create_command(*, model_id: str, action: str, issued_by: str = "") -> ModelCommand:
    if action not in ModelCommand.Action.values:
        raise ValueError(f"unknown action {action!r}")
    return ModelCommand.objects.create(model_id=model_id, action=action, issued_by=issued_by)


@dataclass(frozen=True)
class ProcessState:
    """One process, and where one model stands in it."""

    process: ServerProcess
    gone: bool
    state: str  # a ModelLoadState.State, or "" when this process never loaded the model
    error: str
    since: datetime | None


def model_load_states(*, model_id: str, heartbeat_seconds: float) -> list[ProcessState]:
    """Every process with a row, the live ones first, and the model's state in each."""
    now = timezone.now()
    states = {s.process_id: s for s in ModelLoadState.objects.filter(model_id=model_id)}
    rows = []
    for process in ServerProcess.objects.all():
        state = states.get(process.pk)
        rows.append(ProcessState(
            process=process,
            gone=process.is_gone(heartbeat_seconds, now),
            state=state.state if state else "",
            error=state.error if state else "",
            since=state.changed_at if state else None,
        ))
    return sorted(rows, key=lambda row: row.gone)


def load_state_summary(*, model_id: str, heartbeat_seconds: float) -> dict[str, int]:
    """How many live processes have the model in each state, and "live": how many there are."""
    rows = [row for row in model_load_states(model_id=model_id, heartbeat_seconds=heartbeat_seconds) if not row.gone]
    summary = {"live": len(rows)}
    for row in rows:
        if row.state:
            summary[row.state] = summary.get(row.state, 0) + 1
    return summary
