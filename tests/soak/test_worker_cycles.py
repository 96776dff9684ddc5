"""Disable/enable cycles of a model leave the memory of one loaded model, and a kill -9 of the web
process leaves no worker behind: the last act on the cycled server (the workers' other behaviour:
tests/e2e/test_engine_workers.py)."""

import os
import signal

import httpx
import pytest

from tests.support.admin_forms import admin_session
from tests.support.processes import alive, rss_mb, total_rss_mb, worker_pids
from tests.support.server import ADMIN_PASSWORD, ADMIN_USER, SMALL_MODEL, start_server, stop_server, superuser
from tests.support.workers import COPY, bundled_gguf, copy_entry, in_background, ready, set_enabled, wait_until

CYCLES = 10
# The model cycled: the smaller bundled one, whose load takes 1.5 s where Gemma's takes 8 (the
# web process's side of a cycle, where memory could be left behind, is the same for any model).
CYCLED = SMALL_MODEL


@pytest.fixture(scope="module")
def cycling_server(tmp_path_factory):
    setup = (copy_entry(COPY, bundled_gguf()), superuser(ADMIN_USER))
    server = start_server(tmp_path_factory.mktemp("cycles"), startup_models=(CYCLED,), setup=setup)
    yield server
    stop_server(server)


def test_disable_enable_cycles_leave_the_total_rss_of_one_loaded_model(cycling_server):
    server, pid = cycling_server, cycling_server.process.pid
    request = {"prompt": "Hello", "max_tokens": 4, "model": CYCLED}
    assert httpx.post(f"{server.url}/api/generate", json=request, timeout=600).status_code == 200
    one_model = total_rss_mb(pid)
    web_alone = []
    with admin_session(server.url, ADMIN_USER, ADMIN_PASSWORD) as admin:
        for _ in range(CYCLES):
            set_enabled(admin, CYCLED, False)
            wait_until(lambda: not worker_pids(pid), 30, "the unloaded model's worker exited")
            web_alone.append(rss_mb(pid))
            set_enabled(admin, CYCLED, True)
            response = httpx.post(f"{server.url}/api/generate", json=request, timeout=600)
            assert response.status_code == 200, response.text
    wait_until(lambda: len(worker_pids(pid)) == 1, 30, "one worker")
    after = total_rss_mb(pid)
    print(f"\ntotal RSS with one model loaded {one_model:.0f} MB; after {CYCLES} disable/enable cycles {after:.0f} MB; "
          f"the web process alone after each unload {web_alone[0]:.0f}..{web_alone[-1]:.0f} MB")
    assert after < one_model * 1.10, (one_model, after)


def test_kill_9_of_the_web_process_leaves_no_worker_behind(cycling_server):
    """Runs last on its server. One worker serves, another is in the middle of a load (the GIL held)."""
    server, pid = cycling_server, cycling_server.process.pid
    in_background(lambda: httpx.post(f"{server.url}/api/generate", json={"prompt": "x", "model": COPY}, timeout=600))
    workers = wait_until(lambda: len(worker_pids(pid)) == 2 and worker_pids(pid), 30, "a second worker loading")
    assert ready(server.url)["models"][COPY]["state"] == "loading"
    os.kill(pid, signal.SIGKILL)
    server.process.wait()
    wait_until(lambda: not any(alive(worker) for worker in workers), 10, "no worker left")
