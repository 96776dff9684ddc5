"""PostgreSQL through the connection pool: a real PostgreSQL server and real Daphne servers.

Under ASGI every request runs its database work in a fresh thread, so without a pool each
request opens a connection of its own. PostgreSQL logs each connection it accepts
(`log_connections`): that log is the count.
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import free_port, start_server, stop_server

REQUESTS = 30
POOL_SIZE = 3


def postgres_program(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    assert found, "PostgreSQL is needed (make test installs it)"
    return found


def as_postgres_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the Debian package brings a `postgres` user.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server with a database `llm`; yields (URL, its log file)."""
    directory = Path(tempfile.mkdtemp(prefix="pg-"))
    if os.geteuid() == 0:
        os.chown(directory, pwd.getpwnam("postgres").pw_uid, -1)
    subprocess.run(
        as_postgres_user([postgres_program("initdb"), "-D", str(directory / "data"), "-A", "trust", "-U", "llm"]),
        check=True, capture_output=True,
    )
    port = free_port()
    log_path = directory / "server.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        as_postgres_user([
            postgres_program("postgres"), "-D", str(directory / "data"), "-p", str(port), "-k", str(directory),
            "-c", "listen_addresses=127.0.0.1", "-c", "log_connections=on",
        ]),
        stdout=log, stderr=subprocess.STDOUT,
    )
    admin_url = f"postgresql://llm@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(admin_url, autocommit=True) as connection:
                connection.execute("CREATE DATABASE llm")
            break
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
    yield f"postgres://llm@127.0.0.1:{port}/llm", log_path
    process.terminate()
    process.wait(timeout=20)
    shutil.rmtree(directory, ignore_errors=True)


def connections_opened(log_path: Path) -> int:
    return log_path.read_text().count("connection authorized: user=llm database=llm")


def connections_for_requests(tmp_path: Path, postgres, **env: str) -> int:
    """Connections PostgreSQL accepted while a server answered REQUESTS catalog reads."""
    url, log_path = postgres
    server = start_server(tmp_path, DATABASE_URL=url, DATABASE_POOL_MAX_SIZE=str(POOL_SIZE), **env)
    try:
        time.sleep(1)  # the pool's first connections
        before = connections_opened(log_path)
        for _ in range(REQUESTS):
            response = httpx.get(f"{server.url}/v1/models", timeout=30)
            assert response.status_code == 200 and response.json()["data"], response.text
        generated = httpx.post(f"{server.url}/api/generate", json={"prompt": "Hello", "max_tokens": 2}, timeout=120)
        assert generated.status_code == 200, generated.text
        return connections_opened(log_path) - before
    finally:
        stop_server(server)


def test_requests_share_the_pools_connections(tmp_path, postgres):
    assert connections_for_requests(tmp_path, postgres) <= POOL_SIZE


def test_without_the_pool_each_request_opens_a_connection(tmp_path, postgres):
    # The same count with DATABASE_POOL=false: what the pool saves, and proof the count can fail.
    assert connections_for_requests(tmp_path, postgres, DATABASE_POOL="false") >= REQUESTS
