"""API keys on the OpenAI-compatible API (with the official SDK) and on the WebSocket,
against a real server with LLM_REQUIRE_API_KEY on."""

import json

import openai
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.test_api_keys import MODEL, new_key, server  # noqa: F401  (server: the fixture)


def sdk(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=60)


def websocket(server, **headers):
    return connect(server.url.replace("http", "ws", 1) + "/ws/generate/", additional_headers=headers)


def test_the_sdk_needs_a_valid_key(server):  # noqa: F811
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk(server, "not-a-key").models.list()
    assert raised.value.code == "unauthorized"
    assert raised.value.type == "authentication_error"
    client = sdk(server, new_key(server, "sdk"))
    assert MODEL in [model.id for model in client.models.list()]
    completion = client.completions.create(model=MODEL, prompt="Hello", max_tokens=2, temperature=0)
    assert completion.usage.completion_tokens == 2


def test_a_websocket_without_a_valid_key_is_told_and_closed(server):  # noqa: F811
    for headers in ({}, {"Authorization": "Bearer not-a-key"}):
        with websocket(server, **headers) as socket:
            reply = json.loads(socket.recv(timeout=30))
            assert reply["type"] == "error" and reply["error"]["code"] == "unauthorized"
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv(timeout=30)
            assert closed.value.rcvd.code == 4401


def test_a_websocket_with_a_key_generates(server):  # noqa: F811
    key = new_key(server, "socket")
    with websocket(server, Authorization=f"Bearer {key}") as socket:
        socket.send(json.dumps({"type": "generate", "id": 1, "prompt": "Hello", "max_tokens": 2, "temperature": 0}))
        replies = [json.loads(socket.recv(timeout=60)) for _ in range(3)]
    assert [reply["type"] for reply in replies] == ["delta", "delta", "done"]
