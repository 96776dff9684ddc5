"""Load state and commands without a server: what the heartbeat writes, which commands a
process applies, what the admin shows and lets a staff user do."""

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from catalog.models import ModelEntry
from generation.engine.cache import EngineCache
from generation.core.limiter import ConcurrencyLimiter
from generation.lifecycle.load_state import RETENTION, LoadStateReporter, load_state_summary, model_load_states
from generation.models import ModelCommand, ModelLoadState, ServerProcess
from generation.lifecycle.runtime import Runtime, install
from workbench.load_state import load_state_text

pytestmark = pytest.mark.django_db

BUNDLED = "google/gemma-3-270m"


class Recorder:
    """A reporter's parts: the engine cache's states, and the commands it applied."""

    def __init__(self):
        self.states: dict[str, dict] = {}
        self.applied: list[tuple[str, str]] = []

    def reporter(self, **kwargs) -> LoadStateReporter:
        return LoadStateReporter(
            interval=1.0, states=lambda: self.states, apply_command=lambda *c: self.applied.append(c), **kwargs
        )


def state_of(model_id: str, reporter: LoadStateReporter) -> ModelLoadState:
    return ModelLoadState.objects.get(process=reporter.process, model_id=model_id)


def test_state_changes_are_written_at_the_next_beat():
    recorder = Recorder()
    reporter = recorder.reporter(host="pod-a", pid=41, version="1.0.0")
    reporter.record_event("loading", "m")
    assert not ServerProcess.objects.exists()  # the listener writes nothing itself
    reporter.beat()
    process = ServerProcess.objects.get()
    assert (process.host, process.pid, process.version) == ("pod-a", 41, "1.0.0")
    assert state_of("m", reporter).state == "loading"

    recorder.states["m"] = {"state": "failed", "error": "Model m could not be loaded: no such file"}
    reporter.record_event("load_failed", "m", 0.3)
    reporter.beat()
    failed = state_of("m", reporter)
    assert (failed.state, failed.error) == ("failed", "Model m could not be loaded: no such file")

    reporter.record_event("loaded", "m", 1.0)
    reporter.record_event("stopped", "other", 0.0)
    reporter.beat()
    assert (state_of("m", reporter).state, state_of("m", reporter).error) == ("loaded", "")
    assert state_of("other", reporter).state == "unloaded"


def test_what_the_engine_cache_knew_before_the_first_beat_is_written():
    recorder = Recorder()
    recorder.states = {"a": {"state": "loaded", "error": None}, "b": {"state": "crashed", "error": "it died"}}
    reporter = recorder.reporter()
    reporter.beat()
    assert state_of("a", reporter).state == "loaded"
    assert (state_of("b", reporter).state, state_of("b", reporter).error) == ("failed", "it died")


def test_a_beat_refreshes_the_heartbeat_and_a_deleted_row_is_registered_again():
    reporter = Recorder().reporter()
    reporter.beat()
    first = ServerProcess.objects.get()
    ServerProcess.objects.update(last_heartbeat=timezone.now() - timedelta(seconds=30))
    reporter.beat()
    assert ServerProcess.objects.get().last_heartbeat > timezone.now() - timedelta(seconds=5)
    ServerProcess.objects.all().delete()  # cleaned while this process could not reach the database
    reporter.beat()
    assert ServerProcess.objects.get().pk != first.pk


def test_commands_issued_before_the_start_are_not_replayed_and_later_ones_are_applied_once():
    ModelCommand.objects.create(model_id="old", action="load")
    recorder = Recorder()
    reporter = recorder.reporter()
    reporter.beat()
    assert recorder.applied == []
    ModelCommand.objects.create(model_id="m", action="reload")
    ModelCommand.objects.create(model_id="n", action="unload")
    reporter.beat()
    reporter.beat()
    assert recorder.applied == [("reload", "m"), ("unload", "n")]


def test_every_process_applies_a_command():
    one, other = Recorder(), Recorder()
    reporters = [one.reporter(pid=1), other.reporter(pid=2)]
    for reporter in reporters:
        reporter.beat()
    ModelCommand.objects.create(model_id="m", action="load")
    for reporter in reporters:
        reporter.beat()
    assert one.applied == other.applied == [("load", "m")]


def test_stale_processes_are_gone_and_old_ones_are_cleaned():
    live, stale = Recorder().reporter(pid=1), Recorder().reporter(pid=2)
    live.record_event("loaded", "m")
    stale.record_event("loaded", "m")
    stale.beat()
    live.beat()
    assert load_state_summary(model_id="m", heartbeat_seconds=1.0) == {"live": 2, "loaded": 2}
    ServerProcess.objects.filter(pid=2).update(last_heartbeat=timezone.now() - timedelta(seconds=10))
    rows = model_load_states(model_id="m", heartbeat_seconds=1.0)
    assert [(row.process.pid, row.gone) for row in rows] == [(1, False), (2, True)]
    assert load_state_summary(model_id="m", heartbeat_seconds=1.0) == {"live": 1, "loaded": 1}
    old_command = ModelCommand.objects.create(model_id="m", action="load", issued_at=timezone.now() - RETENTION * 2)
    ServerProcess.objects.filter(pid=2).update(last_heartbeat=timezone.now() - RETENTION * 2)
    live.beat()
    assert list(ServerProcess.objects.values_list("pid", flat=True)) == [1]
    assert not ModelCommand.objects.filter(pk=old_command.pk).exists()


@pytest.mark.django_db(transaction=True)  # the heartbeat thread writes with a connection of its own
def test_a_stopped_reporter_deletes_its_row():
    reporter = Recorder().reporter()
    reporter.interval = 0.05
    reporter.start()
    try:
        deadline = time.monotonic() + 10
        while not ServerProcess.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ServerProcess.objects.exists()
    finally:
        reporter.stop()
    assert not ServerProcess.objects.exists()


class FakeCache(EngineCache):
    """An engine cache that records what it was asked to load and unload, and starts nothing."""

    def __init__(self):
        super().__init__(cache_dir="/nonexistent", max_loaded=2)
        self.calls = []

    def load_now(self, config):
        self.calls.append(("load", config.model_id))

    def unload(self, model_id):
        self.calls.append(("unload", model_id))
        return False


@pytest.fixture
def runtime():
    runtime = Runtime(
        engine_cache=FakeCache(),
        limiter=ConcurrencyLimiter(max_active=1, max_queued=0, timeout=1),
        heartbeat_seconds=1.0,
    )
    previous = install(runtime)
    yield runtime
    install(previous)


def test_the_runtime_applies_commands_to_its_engine_cache(runtime):
    runtime.apply_command("load", BUNDLED)
    runtime.apply_command("unload", BUNDLED)
    runtime.apply_command("reload", BUNDLED)
    runtime.apply_command("load", "not/in-the-catalog")  # deleted meanwhile: nothing to load
    assert runtime.engine_cache.calls == [
        ("load", BUNDLED), ("unload", BUNDLED), ("unload", BUNDLED), ("load", BUNDLED),
    ]


def test_the_runtime_records_its_engine_caches_events(runtime):
    runtime.engine_cache._notify("loading", BUNDLED, 0.0)
    runtime.load_state.beat()
    assert state_of(BUNDLED, runtime.load_state).state == "loading"


# --- the admin -----------------------------------------------------------------------------


@pytest.fixture
def staff_client(client, settings):
    # The processes these tests record beat once: with a heartbeat of hours they stay live however
    # long a first admin page takes to render on a loaded machine (it took 24 s once, and a
    # process three 5 s beats late is shown as gone).
    settings.LLM_HEARTBEAT_SECONDS = 3600
    user = User.objects.create_superuser("boss", "boss@example.com", "a-password-1234")
    client.force_login(user)
    return client


def change_url(entry: ModelEntry, action: str = "") -> str:
    base = f"/admin/catalog/modelentry/{entry.pk}/"
    return f"{base}load-state/{action}/" if action else f"{base}change/"


def test_the_list_and_the_change_page_show_the_load_state(staff_client, runtime):
    reporter = Recorder().reporter(host="pod-a", pid=7)
    reporter.record_event("loaded", BUNDLED)
    reporter.beat()
    Recorder().reporter(host="pod-b", pid=8).beat()
    assert load_state_text(BUNDLED) == "loaded on 1/2"
    page = staff_client.get("/admin/catalog/modelentry/").content.decode()
    assert "loaded on 1/2" in page and "Load state" in page
    entry = ModelEntry.objects.get(model_id=BUNDLED)
    page = staff_client.get(change_url(entry)).content.decode()
    assert 'data-process="pod-a:7" data-state="loaded"' in page
    assert 'data-process="pod-b:8" data-state="not-loaded"' in page
    assert f'formaction="{change_url(entry, "load")}"' in page


def test_a_button_issues_a_command_for_every_process(staff_client, runtime):
    entry = ModelEntry.objects.get(model_id=BUNDLED)
    response = staff_client.post(change_url(entry, "reload"))
    assert response.status_code == 302 and response["Location"] == change_url(entry)
    command = ModelCommand.objects.get()
    assert (command.model_id, command.action, command.issued_by) == (BUNDLED, "reload", "boss")
    assert staff_client.get(change_url(entry, "load")).status_code == 405
    assert staff_client.post(change_url(entry, "explode")).status_code == 403


def test_the_list_actions_issue_commands(staff_client, runtime):
    ids = list(ModelEntry.objects.values_list("pk", flat=True))
    ModelEntry.objects.filter(model_id=BUNDLED).update(enabled=False)
    response = staff_client.post(
        "/admin/catalog/modelentry/", {"action": "load_models", "_selected_action": ids}, follow=True
    )
    assert response.status_code == 200
    loaded = set(ModelCommand.objects.values_list("model_id", flat=True))
    assert loaded == set(ModelEntry.objects.filter(enabled=True).values_list("model_id", flat=True))
    assert "disabled in the catalog" in response.content.decode()


def test_the_actions_need_a_staff_user_and_csrf(client, runtime):
    entry = ModelEntry.objects.get(model_id=BUNDLED)
    response = client.post(change_url(entry, "load"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    user = User.objects.create_superuser("boss", "boss@example.com", "a-password-1234")
    from django.test import Client

    checked = Client(enforce_csrf_checks=True)
    checked.force_login(user)
    assert checked.post(change_url(entry, "load")).status_code == 403
    assert not ModelCommand.objects.exists()
