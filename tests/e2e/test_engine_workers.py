"""Each loaded model in a worker process of its own, through real servers and real processes.

Before the workers, the engine ran inside the web process: a load held the GIL for the
whole load (7.7 s; /health/live timed out and every stream froze), unloading gave no
memory back (RSS 1.0 GB -> 3.6 GB over 8 disable/enable cycles), and an abort in the
engine took the whole server down.
"""

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.conf import settings

from common.errors import ModelUnavailable
from generation.engine.cache import EngineCache
from tests.support.admin_forms import admin_session
from tests.support.metrics import metric
from tests.support.server import ADMIN_PASSWORD, ADMIN_USER, start_server, stop_server, superuser
from tests.support.processes import alive, worker_pids
from tests.support.sse_client import parse_events
from tests.support.workers import (
    BUNDLED, COPY, ONE_STARTUP_MODEL, bundled_gguf, copy_entry, in_background, ready, set_enabled, wait_until,
)

ENDLESS = {"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "temperature": 0}
STOP_TIMEOUT = 3
HANG_SECONDS = 15  # the default LLM_ENGINE_HANG_SECONDS
LIVE_P99_BOUND = 0.1


PROBE = """
import json, select, sys, time
import httpx
latencies = []
with httpx.Client(base_url=sys.argv[1], timeout=10) as client:
    while not select.select([sys.stdin], [], [], 0)[0]:
        started = time.perf_counter()
        assert client.get("/health/live").status_code == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.02)
print(json.dumps(latencies))
"""


@contextlib.contextmanager
def probing_live(url: str):
    """Seconds taken by each /health/live, asked one after another while the block runs.

    Asked from a process of its own: in this one, the test's other threads (streaming
    clients) would hold the GIL and add their own delays to the measure.
    """
    probe = subprocess.Popen([sys.executable, "-c", PROBE, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    latencies = []
    try:
        yield latencies
    finally:
        output, _ = probe.communicate("stop\n", timeout=60)
        assert probe.returncode == 0
        latencies.extend(json.loads(output))


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def stream_to_the_end(url: str, body: dict) -> list:
    with httpx.Client(timeout=600) as client:
        with client.stream("POST", f"{url}/api/generate/stream", json=body) as response:
            assert response.status_code == 200
            events, _ = parse_events(response.iter_lines(), time.monotonic)
    return events


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The bundled model loaded at start-up, a copy of it to load on demand, 4 generations at once."""
    tmp_path = tmp_path_factory.mktemp("workers")
    server = start_server(
        tmp_path,
        setup=(ONE_STARTUP_MODEL, copy_entry(COPY, bundled_gguf()), superuser(ADMIN_USER)),
        LLM_MAX_CONCURRENT_REQUESTS="4",
        LLM_MAX_QUEUED_REQUESTS="8",
        LLM_ENGINE_STOP_TIMEOUT_SECONDS=str(STOP_TIMEOUT),
    )
    yield server
    stop_server(server)


def test_a_model_runs_in_its_own_process_and_its_lines_reach_the_log(server):
    state = ready(server.url)["models"][BUNDLED]
    assert state["state"] == "loaded" and state["load_seconds"] > 0
    assert worker_pids(server.process.pid) == [state["pid"]]
    assert httpx.post(f"{server.url}/api/generate", json={"prompt": "Hello", "max_tokens": 2}, timeout=60).status_code == 200
    with open(server.log) as log:
        records = [json.loads(line) for line in log if line.startswith("{")]
    worker_lines = [r["message"] for r in records if r["logger"] == "generation.engine.worker"]
    assert worker_lines and all(line.startswith(f"[{BUNDLED}] ") for line in worker_lines)
    assert any("loaded in" in line for line in worker_lines)  # a record of the worker's own
    assert any("mistralrs_core" in line for line in worker_lines)  # a line the engine wrote itself
    assert all(r.get("model") == BUNDLED for r in records if r["logger"] == "generation.engine.worker")


def test_health_live_stays_fast_while_a_model_loads_and_while_four_streams_run(server):
    loading, outcome = in_background(
        lambda: httpx.post(f"{server.url}/api/generate", json={"prompt": "Hi", "model": COPY, "max_tokens": 2},
                           timeout=600)
    )
    wait_until(lambda: ready(server.url)["models"].get(COPY, {}).get("state") == "loading", 30, "the load started")
    with probing_live(server.url) as during_load:
        loading.join(600)
    assert outcome["result"].status_code == 200, outcome
    assert ready(server.url)["models"][COPY]["state"] == "loaded"

    streams = [in_background(stream_to_the_end, server.url, {**ENDLESS, "max_tokens": 100}) for _ in range(4)]
    wait_until(lambda: metric(server.url, "llm_requests_in_flight") == 4, 30, "four streams running")
    with probing_live(server.url) as during_streams:
        for thread, _ in streams:
            thread.join(600)
    for _, result in streams:
        assert result["result"][-1].event == "done", result
    with probing_live(server.url) as idle:
        time.sleep(3)
    print(f"\n/health/live p99 {p99(during_load) * 1000:.1f} ms over {len(during_load)} probes during a load, "
          f"{p99(during_streams) * 1000:.1f} ms over {len(during_streams)} during 4 streams "
          f"({p99(idle) * 1000:.1f} ms idle)")
    assert len(during_load) >= 50 and len(during_streams) >= 50
    assert p99(during_load) < LIVE_P99_BOUND
    assert p99(during_streams) < LIVE_P99_BOUND


def test_kill_9_of_a_worker_mid_stream_ends_its_streams_with_the_error_and_the_next_request_succeeds(server):
    pid = ready(server.url)["models"][BUNDLED]["pid"]
    crashes = metric(server.url, "llm_engine_worker_crashes_total", model=BUNDLED)
    first_tokens = metric(server.url, "llm_time_to_first_token_seconds_count", model=BUNDLED, endpoint="generate")
    whole, whole_outcome = in_background(
        lambda: httpx.post(f"{server.url}/api/generate", json={**ENDLESS, "max_tokens": 2000}, timeout=120)
    )
    with httpx.Client(timeout=120) as client:
        with client.stream("POST", f"{server.url}/api/generate/stream", json={**ENDLESS, "max_tokens": 2000}) as r:
            lines = r.iter_lines()
            next(line for line in lines if line.startswith("data:"))
            wait_until(
                lambda: metric(server.url, "llm_time_to_first_token_seconds_count", model=BUNDLED,
                               endpoint="generate") > first_tokens,
                60, "the non-streaming request is generating",
            )
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            events, _ = parse_events(lines, time.monotonic)
    error = events[-1]
    assert error.event == "error", events[-3:]
    assert json.loads(error.data)["error"]["code"] == "engine_error"
    assert "ended unexpectedly (killed by SIGKILL)" in json.loads(error.data)["error"]["message"]
    whole.join(60)
    assert whole_outcome["result"].status_code == 503
    assert whole_outcome["result"].json()["error"]["code"] == "engine_error"
    print(f"\nkill -9 of the worker: the stream's error event {(error.received_at - killed_at) * 1000:.0f} ms later")
    assert error.received_at - killed_at < 2

    readiness = ready(server.url)
    assert readiness["models"][BUNDLED]["state"] == "crashed"
    assert "killed by SIGKILL" in readiness["models"][BUNDLED]["error"]
    assert metric(server.url, "llm_engine_worker_crashes_total", model=BUNDLED) == crashes + 1
    assert metric(server.url, "llm_model_state", model=BUNDLED, llm_model_state="crashed") == 1
    assert not alive(pid)

    after = httpx.post(f"{server.url}/api/generate", json={"prompt": "Hello", "max_tokens": 2}, timeout=600)
    assert after.status_code == 200, after.text
    assert ready(server.url)["models"][BUNDLED]["state"] == "loaded"
    assert ready(server.url)["models"][BUNDLED]["pid"] != pid


def test_a_hung_worker_is_killed_its_stream_ends_with_the_error_and_other_models_keep_serving(server):
    """A worker stopped by SIGSTOP looks like an engine in a deadlock. Before: its clients that gave up
    each held one of the event loop's 6 executor threads for good, and after 9 of them the healthy
    model's requests hung too; the stream on it got keep-alive comments for ever and probes stayed green."""
    assert httpx.post(f"{server.url}/api/generate", json={"prompt": "Hi", "model": COPY, "max_tokens": 1},
                      timeout=600).status_code == 200
    pid = ready(server.url)["models"][COPY]["pid"]
    hangs = metric(server.url, "llm_engine_worker_hangs_total", model=COPY)
    crashes = metric(server.url, "llm_engine_worker_crashes_total", model=COPY)

    def give_up_tokenizing(_):
        with contextlib.suppress(httpx.TimeoutException):
            httpx.post(f"{server.url}/api/tokenize", json={"model": COPY, "text": "Hello"}, timeout=1)

    try:
        with httpx.Client(timeout=120) as client:
            body = {**ENDLESS, "model": COPY, "max_tokens": 4000}
            with client.stream("POST", f"{server.url}/api/generate/stream", json=body) as response:
                lines = response.iter_lines()
                next(line for line in lines if line.startswith("data:"))
                os.kill(pid, signal.SIGSTOP)
                stopped_at = time.monotonic()
                with ThreadPoolExecutor(10) as clients:
                    list(clients.map(give_up_tokenizing, range(10)))
                healthy = httpx.post(f"{server.url}/api/generate", json={"prompt": "Hello", "max_tokens": 2},
                                     timeout=HANG_SECONDS)
                assert healthy.status_code == 200, healthy.text
                # Readiness shows it from 3 s of silence until the kill.
                unready = wait_until(
                    lambda: (answer := httpx.get(f"{server.url}/health/ready", timeout=10)).status_code == 503
                    and answer.json(), HANG_SECONDS, "readiness shows the silent worker",
                )
                assert time.monotonic() - stopped_at < HANG_SECONDS, "too slow to see the worker before its kill"
                assert unready["models"][COPY]["state"] == "unresponsive"
                assert "has not answered for" in unready["errors"][COPY]
                events, _ = parse_events(lines, time.monotonic)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGCONT)
    error = events[-1]
    assert error.event == "error", events[-3:]
    message = json.loads(error.data)["error"]["message"]
    assert f"The engine process of {COPY} ended unexpectedly (hung: no heartbeat for" in message
    assert HANG_SECONDS <= error.received_at - stopped_at < HANG_SECONDS + 5
    wait_until(lambda: not alive(pid), 10, "the hung worker is gone")
    assert metric(server.url, "llm_engine_worker_hangs_total", model=COPY) == hangs + 1
    assert metric(server.url, "llm_engine_worker_crashes_total", model=COPY) == crashes + 1
    assert ready(server.url)["models"][COPY]["state"] == "crashed"
    after = httpx.post(f"{server.url}/api/generate", json={"prompt": "Hi", "model": COPY, "max_tokens": 1},
                       timeout=600)
    assert after.status_code == 200, after.text
    assert ready(server.url)["models"][COPY]["pid"] != pid


def test_a_worker_gets_none_of_the_web_processs_secrets(server):
    """Before, workers inherited the web process's whole environment, DJANGO_SECRET_KEY included."""
    pid = ready(server.url)["models"][BUNDLED]["pid"]
    with open(f"/proc/{pid}/environ", "rb") as environ:
        names = {entry.split(b"=", 1)[0].decode() for entry in environ.read().split(b"\0") if entry}
    assert "DJANGO_SECRET_KEY" in server.env
    assert not names & {"DJANGO_SECRET_KEY", "DATABASE_URL", "LLM_ENGINE_STOP_TIMEOUT_SECONDS"}
    assert {"PATH", "PYTHONPATH"} <= names


def test_a_corrupt_model_file_is_a_clear_503_and_the_other_models_keep_serving(server, tmp_path):
    corrupt = tmp_path / "corrupt.gguf"
    with open(bundled_gguf(), "rb") as source, open(corrupt, "wb") as target:
        shutil.copyfileobj(source, target)
        target.truncate(corrupt.stat().st_size // 2)  # an interrupted download
    server.change_catalog(copy_entry("local/corrupt", corrupt))
    other, other_outcome = in_background(
        lambda: httpx.post(f"{server.url}/api/generate", json={"prompt": "Hello", "max_tokens": 2}, timeout=600)
    )
    response = httpx.post(f"{server.url}/api/generate", json={"prompt": "x", "model": "local/corrupt"}, timeout=600)
    other.join(600)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "model_unavailable"
    assert "Model local/corrupt could not be loaded: the file is truncated" in error["message"]
    assert str(tmp_path) not in error["message"]
    assert int(response.headers["Retry-After"]) >= 1
    assert other_outcome["result"].status_code == 200

    failures = metric(server.url, "llm_model_load_failures_total", model="local/corrupt")
    started = time.monotonic()
    for _ in range(5):
        again = httpx.post(f"{server.url}/api/generate", json={"prompt": "x", "model": "local/corrupt"}, timeout=60)
        assert again.status_code == 503
    assert time.monotonic() - started < 5  # answered from the failure: no process started again
    assert failures == 1
    assert metric(server.url, "llm_model_load_failures_total", model="local/corrupt") == failures
    wait_until(lambda: len(worker_pids(server.process.pid)) == len(ready(server.url)["loaded_models"]), 10,
               "its worker is gone")
    time.sleep(0.5)  # its exit noticed
    assert ready(server.url)["models"]["local/corrupt"]["state"] == "failed"  # not "crashed": it never loaded
    assert metric(server.url, "llm_engine_worker_crashes_total", model="local/corrupt") == 0


def test_an_unloaded_models_worker_is_killed_after_the_stop_timeout_and_its_stream_ends_with_the_error(server):
    assert httpx.post(f"{server.url}/api/generate", json={"prompt": "Hi", "model": COPY, "max_tokens": 1},
                      timeout=600).status_code == 200
    pid = ready(server.url)["models"][COPY]["pid"]
    with admin_session(server.url, ADMIN_USER, ADMIN_PASSWORD) as admin:
        with httpx.Client(timeout=120) as client:
            body = {**ENDLESS, "model": COPY, "max_tokens": 4000}
            with client.stream("POST", f"{server.url}/api/generate/stream", json=body) as response:
                lines = response.iter_lines()
                next(line for line in lines if line.startswith("data:"))
                set_enabled(admin, COPY, False)
                disabled_at = time.monotonic()
                events, _ = parse_events(lines, time.monotonic)
        # The stream went on after the model was unloaded, until the stop timeout.
        assert events[-1].event == "error"
        assert "unloaded before this generation finished" in json.loads(events[-1].data)["error"]["message"]
        assert STOP_TIMEOUT - 0.5 < events[-1].received_at - disabled_at < STOP_TIMEOUT + 10
        assert any(event.event == "message" for event in events)
        wait_until(lambda: not alive(pid), 10, "the worker is gone")
        assert ready(server.url)["models"][COPY]["state"] == "stopped"
        set_enabled(admin, COPY, True)


async def test_a_worker_that_dies_while_it_loads_is_a_load_failure_that_backs_off(bundled_config):
    """The engine cache of this process: its worker killed in the middle of the load (an
    abort, an OOM kill) is reported as the load's failure, and not retried at once."""
    cache = EngineCache(cache_dir=settings.LLM_MODEL_CACHE_DIR, max_loaded=1, retry_after_failure=60)
    others = set(worker_pids(os.getpid()))
    loading = asyncio.ensure_future(cache.get(bundled_config))
    deadline = time.monotonic() + 30
    while not (started := set(worker_pids(os.getpid())) - others) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    (pid,) = started
    await asyncio.sleep(1)  # into the load
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ModelUnavailable, match=r"ended while it loaded \(killed by SIGKILL\)"):
        await loading
    with pytest.raises(ModelUnavailable) as again:
        await cache.get(bundled_config)
    assert again.value.retry_after > 50
    assert cache.load_counts[bundled_config.model_id] == 1
    assert cache.model_states()[bundled_config.model_id]["state"] == "failed"
    assert not alive(pid) and cache.loaded_model_ids() == []


@pytest.fixture(scope="module")
def replacing_server(tmp_path_factory):
    """A memory limit of 100 MB, under a fresh worker's 1.2 GB: the bundled model's first worker is over it after
    its first generation (its replacement, over it as it starts, is kept). No preset has a limit that small. The
    stop timeout is short: a replaced worker must finish its generations all the same."""
    server = start_server(tmp_path_factory.mktemp("replacing"), setup=(ONE_STARTUP_MODEL,),
                          LLM_ENGINE_WORKER_MAX_RSS_MB="100", LLM_ENGINE_STOP_TIMEOUT_SECONDS=str(STOP_TIMEOUT))
    yield server
    stop_server(server)


def test_a_worker_over_the_memory_limit_is_replaced_while_requests_keep_being_served(replacing_server):
    """Before, the worker was unloaded and the model's next request waited for a whole load: now every request
    is served at once by the old worker until its replacement is ready, and the model never leaves "loaded"."""
    server = replacing_server
    first = ready(server.url)["models"][BUNDLED]
    assert first["state"] == "loaded"
    served, stop = [], threading.Event()

    def keep_generating():
        with httpx.Client(base_url=server.url, timeout=120) as client:
            while not stop.is_set():
                started = time.perf_counter()
                response = client.post("/api/generate", json={"prompt": "Hello", "max_tokens": 2, "temperature": 0})
                served.append((response.status_code, time.perf_counter() - started, response.text))

    generating = threading.Thread(target=keep_generating, daemon=True)
    generating.start()
    try:
        states = []

        def replaced():
            states.append(ready(server.url)["models"][BUNDLED])
            return states[-1]["pid"] != first["pid"]

        wait_until(replaced, 300, "the replacement serves")
        served_while_loading = len(served)
        wait_until(lambda: len(served) >= served_while_loading + 3, 60, "three requests served by the replacement")
    finally:
        stop.set()
        generating.join(timeout=120)
    assert [state["state"] for state in states] == ["loaded"] * len(states)
    assert all(status == 200 for status, _, _ in served), [text for status, _, text in served if status != 200]
    assert served_while_loading >= 2
    replacement = states[-1]
    with open(server.log) as log:
        records = [json.loads(line) for line in log if line.startswith("{")]
    (loaded,) = [record for record in records
                 if record["message"].startswith("loaded model") and record.get("worker_pid") == replacement["pid"]]
    load_seconds = float(re.search(r" in ([\d.]+) s", loaded["message"]).group(1))  # from its start to ready
    slowest = max(seconds for _, seconds, _ in served)
    print(f"\n{len(served)} requests, {served_while_loading} while the replacement loaded ({load_seconds:.1f} s); "
          f"latency median {statistics.median(s for _, s, _ in served):.2f} s, slowest {slowest:.2f} s")
    assert slowest < load_seconds  # none waited for the load
    wait_until(lambda: not alive(first["pid"]), 60, "the old worker is gone, its last generation over")
    assert worker_pids(server.process.pid) == [replacement["pid"]]
    assert metric(server.url, "llm_model_state", model=BUNDLED, llm_model_state="loaded") == 1
