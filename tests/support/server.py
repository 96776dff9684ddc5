"""A real Daphne server for end-to-end tests: started on a free port with a fresh
database, in its own process, and stopped."""

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
TOKENIZER_CASES = FIXTURES / "gemma3_270m_tokenizer_cases.json"
SMOLLM2_TOKENIZER_CASES = FIXTURES / "smollm2_135m_instruct_tokenizer_cases.json"

ADMIN_USER = "admin"
ADMIN_PASSWORD = "a-test-password-1234"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, process: subprocess.Popen, timeout: float = 300, verify=True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2, verify=verify).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} was not ready within {timeout} s")


@dataclass
class LiveServer:
    url: str
    env: dict
    process: subprocess.Popen

    def manage(self, *args: str) -> str:
        """Run a management command against the server's database."""
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True, capture_output=True, text=True
        ).stdout

    def change_catalog(self, code: str) -> str:
        """Change the catalog from another process (`manage.py shell -c CODE`), and wait until
        the server's heartbeat has seen it (catalog.snapshot: without Redis, another
        process's change is seen at the next beat)."""
        output = self.manage("shell", "-c", code)
        time.sleep(3 * float(self.env["LLM_HEARTBEAT_SECONDS"]))
        return output


def server_environment(tmp_path: Path, **overrides: str) -> dict:
    env = {
        **os.environ,
        "DJANGO_SECRET_KEY": "test-only-secret-key-not-for-production",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "LLM_MODEL_CACHE_DIR": str(settings.LLM_MODEL_CACHE_DIR),
        "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD,
        "LLM_HEARTBEAT_SECONDS": "1",  # the catalog changes of `change_catalog` are seen within one
    }
    env.update(overrides)
    return env


def start_server(tmp_path: Path, *, scheme: str = "http", setup: tuple[str, ...] = (), wait: bool = True,
                 migrate: bool = True, **overrides: str) -> LiveServer:
    """Migrate a fresh database (unless `migrate` is off), run `setup` (Python, in
    `manage.py shell`), start Daphne.

    With `wait`, return once /health/ready answers 200.
    """
    port = free_port()
    env = server_environment(tmp_path, LLM_INFERENCE_PORT=str(port), **overrides)
    log = open(tmp_path / "server.log", "w")
    server = LiveServer(url=f"{scheme}://127.0.0.1:{port}", env=env, process=None)
    if migrate:
        server.manage("migrate", "--noinput")
    for code in setup:
        server.manage("shell", "-c", code)
    server.process = subprocess.Popen([sys.executable, "manage.py", "serve"], cwd=ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
    if wait:
        try:
            wait_until_ready(server.url, server.process, verify=False)
        except Exception:
            stop_server(server)
            raise RuntimeError((tmp_path / "server.log").read_text()[-5000:])
    return server


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
