"""SIGTERM drains the server: nothing in flight is cut silently, and it exits 0.

Before the drain, Daphne cancelled every request at once on SIGTERM: streams ended without
a final event and waiting requests were dropped, at every rollout.
"""

import json
import signal
import threading
import time

import httpx
import pytest
import websockets.sync.client

from tests.support.server import BASE_MODEL, start_server, stop_server
from tests.support.sse_client import parse_events

ENDLESS = {"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "max_tokens": 2000, "temperature": 0}


@pytest.fixture
def server_factory(tmp_path):
    servers = []

    def start(grace: str):
        server = start_server(tmp_path, startup_models=(BASE_MODEL,), LLM_SHUTDOWN_GRACE_SECONDS=grace,
                              LLM_SSE_KEEPALIVE_SECONDS="0.5")
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            stop_server(server)


def stream_in_background(url: str, body: dict) -> tuple[threading.Thread, dict, threading.Event]:
    """Reads a stream to its end in a thread; `first` is set at its first text event."""
    result, first = {}, threading.Event()

    def read():
        with httpx.Client(timeout=120) as client, client.stream("POST", f"{url}/api/generate/stream", json=body) as r:
            lines = []
            for line in r.iter_lines():
                lines.append(line)
                if line.startswith("data:"):
                    first.set()
            result["events"], _ = parse_events(iter(lines + [""]), time.monotonic)

    thread = threading.Thread(target=read)
    thread.start()
    assert first.wait(120)
    return thread, result, first


def test_a_stream_that_finishes_within_the_grace_gets_its_done_event(server_factory):
    server = server_factory(grace="60")
    reader, result, _ = stream_in_background(server.url, {**ENDLESS, "max_tokens": 60})
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)

    ready = httpx.get(f"{server.url}/health/ready", timeout=5)
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    refused = httpx.post(f"{server.url}/api/generate", json={"prompt": "Hi", "max_tokens": 2}, timeout=10)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
    assert int(refused.headers["Retry-After"]) >= 1
    openai_refused = httpx.post(f"{server.url}/v1/completions", json={"model": "google/gemma-3-270m", "prompt": "Hi"})
    assert openai_refused.status_code == 503 and openai_refused.json()["error"]["type"] == "server_error"
    assert httpx.get(f"{server.url}/health/live", timeout=5).status_code == 200

    reader.join(timeout=120)
    events = result["events"]
    assert events[-1].event == "done"
    assert json.loads(events[-1].data)["tokens_generated"] == 60
    assert server.process.wait(timeout=30) == 0


def test_a_stream_that_outlasts_the_grace_ends_with_an_error_event(server_factory):
    server = server_factory(grace="2")
    url = server.url.replace("http://", "ws://") + "/ws/generate/"
    with websockets.sync.client.connect(url, open_timeout=30) as socket:
        reader, result, _ = stream_in_background(server.url, ENDLESS)
        socket.send(json.dumps({"type": "generate", "id": "ws", **ENDLESS}))
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)

        reader.join(timeout=60)
        events = result["events"]
        assert events[-1].event == "error"
        assert json.loads(events[-1].data)["error"]["code"] == "shutting_down"
        assert all(event.event == "message" for event in events[:-1])  # text until then, no done

        # The WebSocket request waited for the one generation slot... or ran; either way it
        # ends with an error message, not a silent close.
        while (message := json.loads(socket.recv(timeout=30)))["type"] == "delta":
            pass
        assert message["type"] == "error" and message["error"]["code"] == "shutting_down"
    assert server.process.wait(timeout=30) == 0
    assert time.monotonic() - started < 2 + 10
