"""The process-wide state has one owner, `generation.lifecycle.runtime.Runtime`: built and started by
`manage.py serve`, never at import; tests install their own."""

import json
import subprocess
import sys

from generation.engine.cache import EngineCache
from generation.core.limiter import ConcurrencyLimiter
from generation.lifecycle.runtime import Runtime, current, install
from generation.core.service import engine_cache, limiter
from tests.support.server import ROOT, server_environment


def test_importing_the_asgi_application_starts_nothing(tmp_path):
    code = (
        "import json, threading, inference_service.asgi; "
        "print(json.dumps([thread.name for thread in threading.enumerate()]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=server_environment(tmp_path), capture_output=True, text=True,
        check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["MainThread"]


def test_an_installed_runtime_is_the_one_every_part_uses(tmp_path):
    runtime = Runtime(
        engine_cache=EngineCache(cache_dir=tmp_path, max_loaded=1),
        limiter=ConcurrencyLimiter(max_active=1, max_queued=0, timeout=1),
    )
    previous = install(runtime)
    try:
        assert current() is runtime
        assert engine_cache() is runtime.engine_cache and limiter() is runtime.limiter
        assert runtime.startup_loads.engine_cache is runtime.engine_cache
        assert not runtime.draining.is_set() and not runtime.started
        assert runtime.load_state is None and runtime.catalog_listener is None  # not a server's
    finally:
        install(previous)
    assert current() is not runtime
