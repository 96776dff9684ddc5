"""Redis as the channel layer (REDIS_URL): two real Daphne processes and a real Redis server.

A model withdrawn from the catalog by a third process (a management shell, as an
operator's script or another pod's admin would) is unloaded by both servers, and
WebSocket generation works over the Redis layer.
"""

import json
import time

import httpx
import pytest
from websockets.sync.client import connect

from tests.support.server import BASE_MODEL, start_replicas, stop_server
from tests.support.services import RedisServer

MODEL = "google/gemma-3-270m"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def two_servers(redis_url, tmp_path_factory):
    """Two servers on one database and one Redis, each with the bundled model loaded."""
    servers = start_replicas(tmp_path_factory, startup_models=(BASE_MODEL,), REDIS_URL=redis_url)
    yield servers
    for server in servers:
        stop_server(server)


def loaded_models(server) -> list[str]:
    return httpx.get(f"{server.url}/health/ready", timeout=10).json()["loaded_models"]


def test_websocket_generation_over_the_redis_layer(two_servers):
    with connect(two_servers[0].url.replace("http", "ws", 1) + "/ws/generate/") as socket:
        # Idle longer than a channels_redis blocking receive (5 s): the connection must survive it.
        time.sleep(7)
        socket.send(json.dumps({"type": "generate", "id": 1, "prompt": "Hello", "max_tokens": 3, "temperature": 0}))
        replies = [json.loads(socket.recv(timeout=60)) for _ in range(4)]
    assert [reply["type"] for reply in replies] == ["delta", "delta", "delta", "done"]


def test_a_model_withdrawn_elsewhere_is_unloaded_by_every_server(two_servers):
    assert all(MODEL in loaded_models(server) for server in two_servers)
    two_servers[0].manage(
        "shell", "-c",
        f"from catalog.models import ModelEntry; entry = ModelEntry.objects.get(model_id={MODEL!r}); "
        "entry.enabled = False; entry.save()",
    )
    deadline = time.monotonic() + 15
    while any(MODEL in loaded_models(server) for server in two_servers):
        assert time.monotonic() < deadline, [loaded_models(server) for server in two_servers]
        time.sleep(0.2)
    refused = httpx.post(f"{two_servers[1].url}/api/generate", json={"prompt": "Hi", "max_tokens": 2}, timeout=30)
    assert refused.status_code == 403
