"""Readiness when a start-up model fails to load, and when the database is unreachable or unreadable."""

import json
import time

import httpx
import pytest

from tests.support.server import SMALL_MODEL, start_server, stop_server

BROKEN_STARTUP_ENTRY = (
    "from catalog.models import ModelEntry; ModelEntry.objects.create(model_id='local/broken', "
    "display_name='Broken', source='gguf_file', location='/nonexistent', filename='broken.gguf', "
    "capabilities=['generate'], load_at_startup=True)"
)


def wait_for(url, predicate, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            if predicate(response):
                return response
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def server_with_a_broken_startup_model(tmp_path_factory):
    """The broken entry and SmolLM2 (a load of 1.5 s) at start-up."""
    server = start_server(tmp_path_factory.mktemp("broken"), startup_models=(SMALL_MODEL,),
                          setup=(BROKEN_STARTUP_ENTRY,), wait=False)
    yield server
    stop_server(server)


def test_a_startup_model_that_fails_to_load_makes_the_service_unready(server_with_a_broken_startup_model):
    url = server_with_a_broken_startup_model.url
    ready = wait_for(f"{url}/health/ready", lambda r: r.json()["status"] != "loading")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "error" and body["llm_models_loaded"] is False
    assert "broken.gguf" in body["errors"]["local/broken"]
    assert body["loaded_models"] == [SMALL_MODEL]


def test_the_broken_model_is_a_clear_503_and_the_others_keep_serving(server_with_a_broken_startup_model):
    url = server_with_a_broken_startup_model.url
    broken = httpx.post(f"{url}/api/generate", json={"prompt": "x", "model": "local/broken"}, timeout=60)
    assert broken.status_code == 503
    assert broken.json()["error"]["code"] == "model_unavailable"
    assert "broken.gguf" in broken.json()["error"]["message"]
    assert "/nonexistent" not in broken.json()["error"]["message"]  # no server paths: they are in the log
    working = httpx.post(f"{url}/api/generate", json={"prompt": "Hello", "max_tokens": 2, "model": SMALL_MODEL},
                         timeout=60)
    assert working.status_code == 200
    assert httpx.get(f"{url}/health/live").status_code == 200


def load_failures(url: str, model: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(f'llm_model_load_failures_total{{model="{model}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_a_broken_model_is_not_reloaded_on_every_request_nor_listed(server_with_a_broken_startup_model):
    url = server_with_a_broken_startup_model.url
    failures = load_failures(url, "local/broken")
    assert failures >= 1  # the start-up load
    started = time.monotonic()
    for _ in range(5):
        broken = httpx.post(f"{url}/api/generate", json={"prompt": "x", "model": "local/broken"}, timeout=60)
        assert broken.status_code == 503 and int(broken.headers["Retry-After"]) >= 1
    assert time.monotonic() - started < 5  # answered from the failure, not by loading again
    # Not one load per request; the start-up loader may have retried once meanwhile (its back-off).
    assert load_failures(url, "local/broken") <= failures + 1
    listed = [model["id"] for model in httpx.get(f"{url}/api/models").json()["models"]]
    assert "local/broken" not in listed and "google/gemma-3-270m" in listed
    openai_listed = [model["id"] for model in httpx.get(f"{url}/v1/models").json()["data"]]
    assert "local/broken" not in openai_listed


def test_readiness_follows_the_catalog_as_it_is_now(server_with_a_broken_startup_model):
    """Runs last on this server: the broken start-up model leaves the catalog, the service turns ready."""
    server = server_with_a_broken_startup_model
    assert httpx.get(f"{server.url}/health/ready").status_code == 503
    server.manage("shell", "-c", "from catalog.models import ModelEntry; "
                  "ModelEntry.objects.filter(model_id='local/broken').update(enabled=False)")
    ready = httpx.get(f"{server.url}/health/ready")
    assert ready.status_code == 200, ready.json()
    assert ready.json()["errors"] == {}


NO_STARTUP_MODELS = "from catalog.models import ModelEntry; ModelEntry.objects.update(load_at_startup=False)"


def test_readiness_reads_the_catalog_tables(tmp_path):
    """A database file that went missing is re-created empty by SQLite: `SELECT 1` works, every request fails."""
    server = start_server(tmp_path, setup=(NO_STARTUP_MODELS,))
    try:
        assert httpx.get(f"{server.url}/health/ready").status_code == 200
        (tmp_path / "db.sqlite3").rename(tmp_path / "moved.sqlite3")
        ready = httpx.get(f"{server.url}/health/ready", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["database"] == "unreachable"
        assert "no such table" in ready.json()["errors"]["database"]
        assert httpx.get(f"{server.url}/api/models", timeout=30).status_code == 503
        (tmp_path / "moved.sqlite3").replace(tmp_path / "db.sqlite3")
        assert httpx.get(f"{server.url}/health/ready", timeout=30).status_code == 200
    finally:
        stop_server(server)


def test_an_unreachable_database_makes_the_service_unready(tmp_path):
    server = start_server(
        tmp_path, wait=False, migrate=False, DATABASE_URL="postgres://nobody:secret@127.0.0.1:9/none"
    )
    try:
        wait_for(f"{server.url}/health/live", lambda r: r.status_code == 200, timeout=60)
        ready = httpx.get(f"{server.url}/health/ready", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["database"] == "unreachable"
        assert ready.json()["status"] == "error"
        models = httpx.get(f"{server.url}/api/models", timeout=30)
        assert models.status_code == 503 and models.json()["error"]["code"] == "database_unavailable"
        generate = httpx.post(f"{server.url}/api/generate", json={"prompt": "x"}, timeout=30)
        assert generate.status_code == 503 and generate.json()["error"]["code"] == "database_unavailable"
    finally:
        stop_server(server)


def test_readiness_503s_are_not_logged_as_errors(server_with_a_broken_startup_model):
    """Django logs each 5xx at ERROR; a probe's 503 is an answer: routine while models load
    (DEBUG), a WARNING when an operator has something to fix (here a failing model)."""
    server = server_with_a_broken_startup_model  # its readiness went from loading to error in the first test
    records = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    about_readiness = [r for r in records if "/health/ready" in r["message"] or r["logger"] == "generation.api.health"]
    assert not [r for r in about_readiness if r["level"] in ("ERROR", "CRITICAL")], about_readiness
    warnings = [r for r in about_readiness if r["level"] == "WARNING"]
    assert warnings and all("not ready: error" in r["message"] and "local/broken" in r["message"] for r in warnings)
