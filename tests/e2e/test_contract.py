"""The original service's API contract: each example of its README, replayed against the real
server, keeps its fields, their types and their values where the README gives them. Fields
of ours beyond them are allowed (its clients ignore what they do not know)."""

import httpx
import pytest

from tests.support.sse_client import stream_events


@pytest.fixture(scope="module")
def client(live_server):
    with httpx.Client(base_url=live_server.url, timeout=120) as client:
        yield client


def has_fields(body: dict, types: dict) -> None:
    for field, kind in types.items():
        assert field in body, f"{field} missing from {body}"
        assert isinstance(body[field], kind), f"{field}: {body[field]!r} is not {kind}"


def test_models(client):
    # GET /api/models → {"models": [{"id", "name", "description", "size", "capabilities": ["text-generation", "chat"]}]}
    models = client.get("/api/models").json()["models"]
    assert models
    for model in models:
        has_fields(model, {"id": str, "name": str, "description": str, "size": str, "capabilities": list})
        assert set(model["capabilities"]) <= {"text-generation", "chat"}
    assert {"text-generation", "chat"} <= {capability for model in models for capability in model["capabilities"]}


def test_health(client):
    # GET /health/ready → {"status": "ok", "llm_models_loaded": true}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok" and ready.json()["llm_models_loaded"] is True
    assert client.get("/health/live").status_code == 200


def test_generate(client):
    # POST /api/generate → {"text", "model", "tokens_generated", "finish_reason": "length"}
    body = client.post("/api/generate", json={"prompt": "The capital of France is", "max_tokens": 8}).json()
    has_fields(body, {"text": str, "model": str, "tokens_generated": int, "finish_reason": str})
    assert body["finish_reason"] == "length" and body["tokens_generated"] == 8


def test_chat(client):
    # POST /api/chat → {"message": {"role": "assistant", "content"}, "model", "tokens_generated", "finish_reason": "eos"}
    body = client.post(
        "/api/chat",
        json={"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 64, "temperature": 0},
    ).json()
    has_fields(body, {"message": dict, "model": str, "tokens_generated": int, "finish_reason": str})
    assert body["message"]["role"] == "assistant" and isinstance(body["message"]["content"], str)
    assert body["finish_reason"] == "eos"  # the instruct model ends its turn before max_tokens


def test_stream(client):
    # POST /api/generate/stream → `data: <text>` events
    response, events, _ = stream_events(
        client, "/api/generate/stream", {"prompt": "1, 2, 3", "max_tokens": 4, "temperature": 0}, clock=lambda: 0
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    texts = [event.data for event in events if event.event == "message"]
    assert texts and all(isinstance(text, str) for text in texts)
