"""Generation over WebSocket (/ws/generate/, Channels) against a real Daphne process with
the real bundled model, with a real WebSocket client."""

import json
import subprocess
import sys
import time

import httpx
import pytest
from websockets.sync.client import connect

from tests.support.server import ROOT

GREEDY = {"temperature": 0}
ENDLESS = {"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "max_tokens": 2000, **GREEDY}


@pytest.fixture
def socket(live_server):
    with connect(live_server.url.replace("http", "ws", 1) + "/ws/generate/", open_timeout=30) as socket:
        yield socket


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server.url, timeout=120) as http:
        yield http


def send(socket, message) -> None:
    socket.send(json.dumps(message) if isinstance(message, dict) else message)


def receive(socket) -> dict:
    return json.loads(socket.recv(timeout=120))


def run(socket, message: dict) -> tuple[list[dict], dict]:
    """Send one request; its delta messages and the message that ended it."""
    send(socket, message)
    deltas = []
    while (reply := receive(socket))["type"] == "delta":
        deltas.append(reply)
    return deltas, reply


def test_generate_streams_the_same_text_as_the_native_api(socket, http):
    request = {"prompt": "def fib(n):\n", "max_tokens": 24, **GREEDY}
    expected = http.post("/api/generate", json=request).json()
    deltas, done = run(socket, {"type": "generate", "id": "g1", **request})
    assert len(deltas) > 5
    assert all(delta["id"] == "g1" for delta in deltas)
    assert "".join(delta["text"] for delta in deltas) == expected["text"]
    assert done.pop("request_id").endswith(":g1")  # <connection id>:<message id>, as its log lines say
    assert done == {
        "type": "done",
        "id": "g1",
        "model": "google/gemma-3-270m",
        "finish_reason": "length",
        "tokens_generated": 24,
        "prompt_tokens": expected["prompt_tokens"],
    }


def test_several_requests_in_sequence_on_one_connection(socket, http):
    chat = {"messages": [{"role": "user", "content": "Name a primary colour."}], "max_tokens": 12, **GREEDY}
    expected_chat = http.post("/api/chat", json=chat).json()
    deltas, done = run(socket, {"type": "chat", "id": 1, **chat})
    assert "".join(delta["text"] for delta in deltas) == expected_chat["message"]["content"]
    assert done["tokens_generated"] == expected_chat["tokens_generated"]
    for request_id in (2, 3):
        _, done = run(socket, {"type": "generate", "id": request_id, "prompt": "Hello", "max_tokens": 3})
        assert (done["type"], done["id"], done["tokens_generated"]) == ("done", request_id, 3)


@pytest.mark.parametrize(
    "message, code, field",
    [
        ("not json", "invalid_request", None),
        ("[1, 2]", "invalid_request", None),
        ({"id": "x", "prompt": "hi"}, "invalid_request", "type"),
        ({"type": "dance", "id": "x"}, "invalid_request", "type"),
        ({"type": "generate", "id": "x", "prompt": "hi", "temperature": 9}, "invalid_request", "temperature"),
        ({"type": "generate", "id": "x", "prompt": ""}, "invalid_request", "prompt"),
        ({"type": "chat", "id": "x", "messages": [{"role": "wizard", "content": "hi"}]}, "invalid_request",
         "messages[0].role"),
        ({"type": "generate", "id": "x", "prompt": "hi", "model": "nobody/nothing"}, "model_not_found", "model"),
        ({"type": "generate", "id": "x", "prompt": "hi", "max_tokens": 5000}, "invalid_request", "max_tokens"),
        ({"type": "cancel", "id": "x"}, "invalid_request", None),
    ],
)
def test_a_bad_message_gets_an_error_and_the_connection_stays_open(socket, message, code, field):
    send(socket, message)
    reply = receive(socket)
    assert reply["type"] == "error"
    assert reply["error"]["code"] == code
    assert reply["error"]["message"]
    assert reply["error"].get("field") == field
    if isinstance(message, dict) and "id" in message:
        assert reply["id"] == message["id"]
    _, done = run(socket, {"type": "generate", "id": "after", "prompt": "Hello", "max_tokens": 2})
    assert done["type"] == "done"


def test_one_generation_at_a_time_and_cancel(socket):
    send(socket, {"type": "generate", "id": "long", **ENDLESS})
    assert receive(socket)["type"] == "delta"
    send(socket, {"type": "generate", "id": "second", "prompt": "Hello"})
    while (reply := receive(socket))["type"] == "delta":
        assert reply["id"] == "long"
    assert (reply["type"], reply["id"]) == ("error", "second")
    assert "running" in reply["error"]["message"]
    send(socket, {"type": "cancel"})
    while (reply := receive(socket))["type"] == "delta":
        pass
    assert reply == {"type": "cancelled", "id": "long"}
    # The test server runs one generation at a time: the cancelled one freed the engine.
    started = time.monotonic()
    _, done = run(socket, {"type": "generate", "id": "next", "prompt": "Hello", "max_tokens": 2})
    assert done["type"] == "done"
    assert time.monotonic() - started < 8


def test_a_closed_socket_cancels_its_generation(live_server, http):
    with connect(live_server.url.replace("http", "ws", 1) + "/ws/generate/") as socket:
        send(socket, {"type": "generate", "id": "long", **ENDLESS})
        for _ in range(3):
            assert receive(socket)["type"] == "delta"
    started = time.monotonic()
    body = http.post("/api/generate", json={"prompt": "Hello", "max_tokens": 2, **GREEDY}).json()
    assert body["tokens_generated"] == 2
    assert time.monotonic() - started < 8


@pytest.mark.parametrize(
    "redis_url, backend",
    [("", "channels.layers.InMemoryChannelLayer"), ("redis://localhost:6379/0", "channels_redis.core.RedisChannelLayer")],
)
def test_channel_layer_is_in_memory_unless_redis_url_is_set(redis_url, backend):
    code = "from django.conf import settings; print(settings.CHANNEL_LAYERS['default']['BACKEND'])"
    env = {"DJANGO_SECRET_KEY": "test-only", "REDIS_URL": redis_url}
    output = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert output.strip().splitlines()[-1] == backend
