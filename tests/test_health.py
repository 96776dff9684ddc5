"""Readiness when a start-up model fails to load, and when the database is unreachable."""

import time

import httpx
import pytest

from tests.conftest import start_server, stop_server

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
    server = start_server(tmp_path_factory.mktemp("broken"), setup=(BROKEN_STARTUP_ENTRY,), wait=False)
    yield server
    stop_server(server)


def test_a_startup_model_that_fails_to_load_makes_the_service_unready(server_with_a_broken_startup_model):
    url = server_with_a_broken_startup_model.url
    ready = wait_for(f"{url}/health/ready", lambda r: r.json()["status"] != "loading")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "error" and body["llm_models_loaded"] is False
    assert "broken.gguf" in body["errors"]["local/broken"]
    assert body["loaded_models"] == ["google/gemma-3-270m"]


def test_the_broken_model_is_a_clear_503_and_the_others_keep_serving(server_with_a_broken_startup_model):
    url = server_with_a_broken_startup_model.url
    broken = httpx.post(f"{url}/api/generate", json={"prompt": "x", "model": "local/broken"}, timeout=60)
    assert broken.status_code == 503
    assert broken.json()["error"]["code"] == "model_unavailable"
    assert "broken.gguf" in broken.json()["error"]["message"]
    working = httpx.post(f"{url}/api/generate", json={"prompt": "Hello", "max_tokens": 2}, timeout=60)
    assert working.status_code == 200
    assert httpx.get(f"{url}/health/live").status_code == 200


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
