"""API keys on the OpenAI-compatible API (with the official SDK) and on the WebSocket,
against a real server with LLM_REQUIRE_API_KEY on (the keyed preset, shared)."""

import json
import time

import openai
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.keys import bearer, new_key, start_of_a_fresh_minute

MODEL = "google/gemma-3-270m"


def sdk(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=60)


def websocket(server, **headers):
    return connect(server.url.replace("http", "ws", 1) + "/ws/generate/", additional_headers=headers)


def test_the_sdk_needs_a_valid_key(keyed_server):
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk(keyed_server, "not-a-key").models.list()
    assert raised.value.code == "unauthorized"
    assert raised.value.type == "authentication_error"
    client = sdk(keyed_server, new_key(keyed_server, "sdk"))
    assert MODEL in [model.id for model in client.models.list()]
    completion = client.completions.create(model=MODEL, prompt="Hello", max_tokens=2, temperature=0)
    assert completion.usage.completion_tokens == 2


def test_a_websocket_without_a_valid_key_is_told_and_closed(keyed_server):
    for headers in ({}, {"Authorization": "Bearer not-a-key"}):
        with websocket(keyed_server, **headers) as socket:
            reply = json.loads(socket.recv(timeout=30))
            assert reply["type"] == "error" and reply["error"]["code"] == "unauthorized"
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv(timeout=30)
            assert closed.value.rcvd.code == 4401


def test_a_websocket_with_a_key_generates(keyed_server):
    key = new_key(keyed_server, "socket")
    with websocket(keyed_server, Authorization=f"Bearer {key}") as socket:
        socket.send(json.dumps({"type": "generate", "id": 1, "prompt": "Hello", "max_tokens": 2, "temperature": 0}))
        replies = [json.loads(socket.recv(timeout=60)) for _ in range(3)]
    assert [reply["type"] for reply in replies] == ["delta", "delta", "done"]


def generate(socket, request_id, **options) -> dict:
    """Send a generate message; the reply that ends it (done or error)."""
    body = {"prompt": "Hello", "max_tokens": 2, "temperature": 0, **options}
    socket.send(json.dumps({"type": "generate", "id": request_id, **body}))
    while (reply := json.loads(socket.recv(timeout=60)))["type"] == "delta":
        pass
    return reply


def test_a_key_revoked_while_its_websocket_is_open_is_refused_at_the_next_message(keyed_server):
    """Before: the key was checked at the handshake only, and the socket went on generating."""
    key = new_key(keyed_server, "socket-to-revoke")
    with websocket(keyed_server, **bearer(key)) as socket:
        assert generate(socket, 1)["type"] == "done"
        keyed_server.manage(
            "shell", "-c",
            "from access.models import ApiKey; from access.services import revoke_api_keys; "
            "revoke_api_keys(queryset=ApiKey.objects.filter(name='socket-to-revoke'))",
        )
        reply = generate(socket, 2)
        assert reply["type"] == "error" and reply["id"] == 2, reply
        assert reply["error"]["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=30)
        assert closed.value.rcvd.code == 4401


def test_a_cancelled_generation_gives_back_the_tokens_it_did_not_use(keyed_server):
    """Tokens per minute reserve max_tokens at admission; a generation that ends early
    (here cancelled by its client) gives back what it did not use."""
    start_of_a_fresh_minute()
    key = new_key(keyed_server, "sixty-tokens", "--tokens-per-minute", "60")
    with websocket(keyed_server, **bearer(key)) as socket:
        socket.send(json.dumps({"type": "generate", "id": 1, "prompt": "Hello", "max_tokens": 50}))  # 2 + 50
        assert json.loads(socket.recv(timeout=60))["type"] == "delta"
        socket.send(json.dumps({"type": "cancel"}))
        while json.loads(socket.recv(timeout=60))["type"] != "cancelled":
            pass
        # 2 + 40 fits once the cancelled one's unused tokens are back (recorded in the background).
        deadline = time.monotonic() + 10
        while (reply := generate(socket, 2, max_tokens=40))["type"] == "error" and time.monotonic() < deadline:
            assert reply["error"]["code"] == "rate_limited", reply
            time.sleep(0.2)
        assert reply["type"] == "done", reply


def test_a_key_limited_to_a_model_lists_and_retrieves_only_that_one(keyed_server):
    client = sdk(keyed_server, new_key(keyed_server, "one-model", "--model", "test/other"))
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve(MODEL)
    assert raised.value.code == "model_not_found"
    assert MODEL not in [model.id for model in client.models.list()]
    assert sdk(keyed_server, new_key(keyed_server, "every-model")).models.retrieve(MODEL).id == MODEL


def test_a_key_limited_to_a_model_id_may_use_its_alias(keyed_server):
    client = sdk(keyed_server, new_key(keyed_server, "by-alias", "--model", MODEL))
    assert client.completions.create(model="gemma3", prompt="Hi", max_tokens=1).model == MODEL
    with pytest.raises(openai.PermissionDeniedError):
        client.completions.create(model="smollm2", prompt="Hi", max_tokens=1)
