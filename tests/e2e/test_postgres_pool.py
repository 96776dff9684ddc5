"""PostgreSQL through the connection pool: a real PostgreSQL server and real Daphne servers.

Under ASGI every request runs its database work in a fresh thread, so without a pool each
request opens a connection of its own. PostgreSQL logs each connection it accepts
(`log_connections`): that log is the count.
"""

import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import SMALL_MODEL, start_server, stop_server
from tests.support.services import PostgresServer

REQUESTS = 30
POOL_SIZE = 3


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server with a database `llm`; yields (URL, its log file)."""
    server = PostgresServer().start()
    yield server.url, server.log_path
    server.remove()


def connections_opened(log_path: Path) -> int:
    return log_path.read_text().count("connection authorized: user=llm database=llm")


def connections_for_requests(tmp_path: Path, postgres, **env: str) -> int:
    """Connections PostgreSQL accepted while a server answered REQUESTS catalog reads."""
    url, log_path = postgres
    server = start_server(tmp_path, startup_models=(SMALL_MODEL,), DATABASE_URL=url,
                          DATABASE_POOL_MAX_SIZE=str(POOL_SIZE), **env)
    try:
        time.sleep(1)  # the pool's first connections
        before = connections_opened(log_path)
        for _ in range(REQUESTS):
            response = httpx.get(f"{server.url}/v1/models", timeout=30)
            assert response.status_code == 200 and response.json()["data"], response.text
        generation = {"prompt": "Hello", "max_tokens": 2, "model": SMALL_MODEL}
        generated = httpx.post(f"{server.url}/api/generate", json=generation, timeout=120)
        assert generated.status_code == 200, generated.text
        return connections_opened(log_path) - before
    finally:
        stop_server(server)


def test_requests_share_the_pools_connections(tmp_path, postgres):
    assert connections_for_requests(tmp_path, postgres) <= POOL_SIZE


def test_without_the_pool_each_request_opens_a_connection(tmp_path, postgres):
    # The same count with DATABASE_POOL=false: what the pool saves, and proof the count can fail.
    assert connections_for_requests(tmp_path, postgres, DATABASE_POOL="false") >= REQUESTS
