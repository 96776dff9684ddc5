"""A real Daphne server for end-to-end tests: started on a free port with a fresh
database, in its own process, and stopped; and the presets, the configurations that test
modules share (one server per preset and test session: tests/conftest.py)."""

import atexit
import contextlib
import functools
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from django.conf import settings

from tests.support.tls import self_signed_certificate

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
TOKENIZER_CASES = FIXTURES / "gemma3_270m_tokenizer_cases.json"
SMOLLM2_TOKENIZER_CASES = FIXTURES / "smollm2_135m_instruct_tokenizer_cases.json"

ADMIN_USER = "admin"
ADMIN_PASSWORD = "a-test-password-1234"

# One line per server started in this test session (the terminal summary counts them).
STARTED: list[str] = []


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
    log: Path
    cert_file: Path | None = None  # a TLS server's certificate, to trust

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

    @contextlib.contextmanager
    def catalog_changed(self, code: str, undo: str):
        """The catalog changed by `code` while the block runs, then put back by `undo`: for a
        module on a shared server, whose other users expect the preset's catalog. Both save
        the entries they change (`entry.save()`): a `QuerySet.update` leaves the catalog's
        version as it was, and the server would not see it (catalog.snapshot)."""
        self.change_catalog(code)
        try:
            yield self
        finally:
            self.change_catalog(undo)


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


def superuser(username: str) -> str:
    """Set-up code (for `start_server`) that creates a superuser with ADMIN_PASSWORD."""
    return (f"from django.contrib.auth import get_user_model; get_user_model().objects.create_superuser("
            f"{username!r}, '{username}@example.com', {ADMIN_PASSWORD!r})")


@functools.cache
def _migrated_database() -> Path:
    """A database migrated once per test session: each server starts from a copy of it rather
    than migrating its own (the migrations read no setting, so the copy is the same database)."""
    directory = Path(tempfile.mkdtemp(prefix="migrated-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=server_environment(directory),
                   check=True, capture_output=True)
    return directory / "db.sqlite3"


def load_only_at_startup(database_url: str, model_ids: tuple[str, ...]) -> None:
    """Set which catalog entries load at start-up in a server's SQLite database, before it
    starts: a test server that needs one bundled model does not spend seconds of CPU loading the
    other (a model not loaded at start-up loads on its first request, as in production)."""
    with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as database, database:
        marks = ",".join("?" * len(model_ids))
        database.execute(f"UPDATE catalog_modelentry SET load_at_startup = (model_id IN ({marks}))", model_ids)


def startup_models_setup(model_ids: tuple[str, ...]) -> str:
    """The set-up code that does what `load_only_at_startup` does, for a database that is not SQLite."""
    return ("from catalog.models import ModelEntry; "
            "ModelEntry.objects.update(load_at_startup=False); "
            f"ModelEntry.objects.filter(model_id__in={list(model_ids)!r}).update(load_at_startup=True)")


def start_server(tmp_path: Path, *, scheme: str = "http", setup: tuple[str, ...] = (), wait: bool = True,
                 migrate: bool = True, startup_models: tuple[str, ...] | None = None, **overrides: str) -> LiveServer:
    """Migrate a fresh database (unless `migrate` is off), load only `startup_models` at
    start-up if given, run `setup` (Python, in one `manage.py shell`), start Daphne.

    With `wait`, return once /health/ready answers 200.
    """
    port = free_port()
    env = server_environment(tmp_path, LLM_INFERENCE_PORT=str(port), **overrides)
    server = LiveServer(url=f"{scheme}://127.0.0.1:{port}", env=env, process=None, log=tmp_path / "server.log")
    if migrate and "DATABASE_URL" not in overrides:
        shutil.copyfile(_migrated_database(), tmp_path / "db.sqlite3")
    elif migrate:
        server.manage("migrate", "--noinput")
    if startup_models is not None and env["DATABASE_URL"].startswith("sqlite:///"):
        load_only_at_startup(env["DATABASE_URL"], startup_models)
    elif startup_models is not None:
        setup = (startup_models_setup(startup_models), *setup)
    if setup:
        server.manage("shell", "-c", "\n".join(setup))
    STARTED.append(tmp_path.name)
    with open(server.log, "w") as log:  # the server writes to its own copy of the file
        server.process = subprocess.Popen([sys.executable, "manage.py", "serve"], cwd=ROOT, env=env, stdout=log,
                                          stderr=subprocess.STDOUT)
    if wait:
        wait_for_start(server)
    return server


def wait_for_start(server: LiveServer) -> None:
    """Return once the server is ready; if it is not, stop it and raise with the end of its log."""
    try:
        wait_until_ready(server.url, server.process, verify=False)
    except Exception:
        stop_server(server)
        raise RuntimeError(server.log.read_text()[-5000:])


def start_replicas(tmp_path_factory, count: int = 2, **settings: str) -> list[LiveServer]:
    """`count` servers on one SQLite database (copied from the migrated one), as replicas of one
    deployment would be: started at once, returned once all are ready."""
    database = tmp_path_factory.mktemp("shared-db") / "db.sqlite3"
    shutil.copyfile(_migrated_database(), database)
    servers = []
    try:
        for _ in range(count):
            servers.append(start_server(tmp_path_factory.mktemp("replica"), wait=False, migrate=False,
                                        DATABASE_URL=f"sqlite:///{database}", **settings))
        for server in servers:
            wait_for_start(server)
    except Exception:
        for server in servers:
            stop_server(server)
        raise
    return servers


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()


@dataclass(frozen=True)
class Preset:
    """A server configuration that test modules share: its settings (the environment), its
    set-up code, whether it serves HTTPS (`start_preset`), and the models it loads at start-up."""

    settings: dict[str, str] = field(default_factory=dict)
    setup: tuple[str, ...] = ()
    tls: bool = False
    startup_models: tuple[str, ...] | None = None  # None: the catalog's (both bundled models)


# The catalog entry of the keyed preset: a second model, for a key limited to it (never
# loaded: nothing asks for it).
OTHER_MODEL = (
    "from catalog.models import ModelEntry; ModelEntry.objects.create(model_id='test/other', "
    "display_name='Other', source='gguf_file', location='/nowhere', filename='x.gguf', enabled=False)"
)
# The bundled base model, the one start-up model of the presets and servers that need no other.
BASE_MODEL = "google/gemma-3-270m"
# The bundled instruct model, loaded in 1.5 s (the base model in 8): the one start-up model of
# servers whose tests need some model, not a given one.
SMALL_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
# The origins allowed by the TLS preset's CORS.
CORS_ORIGINS = ("https://app.example.com", "https://other.example.com")
# The request body limit of the presets that test it (protocol, tls): a few KB.
SMALL_BODY_LIMIT = 4096

PRESETS = {
    # The bundled models, no API key: one generation at a time, one waiting place, a short
    # queue timeout (the 429s are tested), fast SSE keep-alives; room for a third model, so that
    # the entries tests add for a while evict no bundled model (its reload cost up to 8 s).
    "default": Preset(settings={
        "LLM_MAX_CONCURRENT_REQUESTS": "1", "LLM_MAX_QUEUED_REQUESTS": "1", "LLM_QUEUE_TIMEOUT_SECONDS": "20",
        "LLM_SSE_KEEPALIVE_SECONDS": "0.05", "LLM_MAX_LOADED_MODELS": "3",
    }, setup=(superuser(ADMIN_USER),)),
    # LLM_REQUIRE_API_KEY on, and a second catalog entry (OTHER_MODEL).
    "keyed": Preset(settings={"LLM_REQUIRE_API_KEY": "true"}, setup=(OTHER_MODEL, superuser(ADMIN_USER))),
    # HTTPS only, through Daphne's own TLS on a self-signed certificate (`server.cert_file`),
    # CORS for CORS_ORIGINS, and the small body limit.
    "tls": Preset(settings={
        "DJANGO_HTTPS": "true", "CORS_ALLOWED_ORIGINS": ",".join(CORS_ORIGINS),
        "LLM_MAX_REQUEST_BYTES": str(SMALL_BODY_LIMIT),
    }, tls=True, startup_models=(BASE_MODEL,)),
    # The protocol layer's limits made small: the body limit, 2 s for a request's headers
    # and for its body, at most 4 connections.
    "protocol": Preset(settings={
        "LLM_MAX_REQUEST_BYTES": str(SMALL_BODY_LIMIT), "LLM_HEADER_TIMEOUT_SECONDS": "2",
        "LLM_BODY_TIMEOUT_SECONDS": "2", "LLM_MAX_CONNECTIONS": "4",
    }, startup_models=(BASE_MODEL,)),
    # Four generations at once, 16 waiting places, a 10 s queue timeout; DEBUG logs.
    "concurrent": Preset(settings={
        "LLM_MAX_CONCURRENT_REQUESTS": "4", "LLM_MAX_QUEUED_REQUESTS": "16", "LLM_QUEUE_TIMEOUT_SECONDS": "10",
        "LOG_LEVEL": "DEBUG",
    }, startup_models=(BASE_MODEL,)),
}


def start_preset(name: str, tmp_path: Path) -> LiveServer:
    preset = PRESETS[name]
    if not preset.tls:
        server = start_server(tmp_path, setup=preset.setup, startup_models=preset.startup_models, **preset.settings)
    else:
        cert_file, key_file = self_signed_certificate(tmp_path)
        server = start_server(tmp_path, scheme="https", setup=preset.setup, startup_models=preset.startup_models,
                              LLM_TLS_CERT_FILE=str(cert_file), LLM_TLS_KEY_FILE=str(key_file), **preset.settings)
        server.cert_file = cert_file
    return server
