"""Real PostgreSQL and Redis servers for the tests, on loopback, that can be stopped and
started again on the same port and data (a restart, as an operator or a crash makes one)."""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from tests.support.server import free_port


def _wait(ready, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.1)


def postgres_program(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    assert found, "PostgreSQL is needed (make test installs it)"
    return found


def as_postgres_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the Debian package brings a `postgres` user.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresServer:
    """A throwaway PostgreSQL cluster with a database `llm`, user `llm`, trust authentication.

    `log_path` logs every connection it accepts (`log_connections`).
    """

    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="pg-"))
        if os.geteuid() == 0:
            os.chown(self.directory, pwd.getpwnam("postgres").pw_uid, -1)
        subprocess.run(
            as_postgres_user([postgres_program("initdb"), "-D", str(self.directory / "data"), "-A", "trust", "-U", "llm"]),
            check=True, capture_output=True,
        )
        self.port = free_port()
        self.log_path = self.directory / "server.log"
        self.url = f"postgres://llm@127.0.0.1:{self.port}/llm"
        self.process = None
        self._database_created = False

    def start(self) -> "PostgresServer":
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            as_postgres_user([
                postgres_program("postgres"), "-D", str(self.directory / "data"), "-p", str(self.port),
                "-k", str(self.directory), "-c", "listen_addresses=127.0.0.1", "-c", "log_connections=on",
            ]),
            stdout=log, stderr=subprocess.STDOUT,
        )
        _wait(self._accepts_connections, "PostgreSQL")
        if not self._database_created:
            with psycopg.connect(f"postgresql://llm@127.0.0.1:{self.port}/postgres", autocommit=True) as connection:
                connection.execute("CREATE DATABASE llm")
            self._database_created = True
        return self

    def _accepts_connections(self) -> bool:
        try:
            psycopg.connect(f"postgresql://llm@127.0.0.1:{self.port}/postgres", connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            # A fast shutdown: the default (smart) one waits for every client to leave,
            # and a server's connection pool never leaves.
            subprocess.run(
                as_postgres_user([postgres_program("pg_ctl"), "stop", "-D", str(self.directory / "data"), "-m", "fast",
                                  "-w"]),
                check=True, capture_output=True,
            )
            self.process.wait(timeout=30)
            self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class RedisServer:
    """A redis-server without persistence: a restart forgets everything, as a fresh pod's would."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> "RedisServer":
        executable = shutil.which("redis-server")
        assert executable, "redis-server is needed (make test installs it)"
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )
        _wait(self._answers, "redis-server", timeout=20)
        return self

    def _answers(self) -> bool:
        try:
            return redis.Redis.from_url(self.url).ping()
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
