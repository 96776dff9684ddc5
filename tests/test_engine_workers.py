"""Each loaded model in a worker process of its own, through real servers and real processes.

Before the workers, the engine ran inside the web process: a load held the GIL for the
whole load (7.7 s; /health/live timed out and every stream froze), unloading gave no
memory back (RSS 1.0 GB -> 3.6 GB over 8 disable/enable cycles), and an abort in the
engine took the whole server down.
"""

import asyncio
import contextlib
import json
import logging
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
from prometheus_client.parser import text_string_to_metric_families

from common.errors import ModelUnavailable
from generation.engine import model_files
from generation.engine.cache import EngineCache
from generation.engine.logs import parse_worker_line
from tests.support.admin_forms import admin_session, change_form
from tests.support.server import ADMIN_PASSWORD, ADMIN_USER, start_server, stop_server
from tests.support.processes import alive, rss_mb, total_rss_mb, worker_pids
from tests.support.sse_client import parse_events

BUNDLED = "google/gemma-3-270m"
COPY = "local/gemma-copy"  # the bundled GGUF under another id: a second model to load
ENDLESS = {"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "temperature": 0}
STOP_TIMEOUT = 3
HANG_SECONDS = 15  # the default LLM_ENGINE_HANG_SECONDS
LIVE_P99_BOUND = 0.1
CYCLES = 10


def copy_entry(model_id: str, gguf) -> str:
    return (
        "from catalog.models import ModelEntry; ModelEntry.objects.create("
        f"model_id={model_id!r}, display_name={model_id!r}, source='gguf_file', location={str(gguf.parent)!r}, "
        f"filename={gguf.name!r}, in_situ_quant='Q8_0', capabilities=['generate'])"
    )


# These servers run one start-up model, whose worker the tests count and measure: the
# bundled chat model is left to load on demand.
ONE_STARTUP_MODEL = (
    "from catalog.models import ModelEntry; "
    "ModelEntry.objects.exclude(model_id='google/gemma-3-270m').update(load_at_startup=False)"
)


def bundled_gguf():
    return model_files.bundled_gguf(model_files.GEMMA_PACKAGE, settings.LLM_MODEL_CACHE_DIR)


def ready(url: str) -> dict:
    return httpx.get(f"{url}/health/ready", timeout=30).json()


def metric(url: str, name: str, **labels) -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


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


def in_background(function, *args) -> tuple[threading.Thread, dict]:
    """Run `function(*args)` in a thread; its result or exception lands in the dict."""
    outcome = {}

    def run():
        try:
            outcome["result"] = function(*args)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def stream_to_the_end(url: str, body: dict) -> list:
    with httpx.Client(timeout=600) as client:
        with client.stream("POST", f"{url}/api/generate/stream", json=body) as response:
            assert response.status_code == 200
            events, _ = parse_events(response.iter_lines(), time.monotonic)
    return events


def change_path(admin: httpx.Client, model_id: str) -> str:
    changelist = admin.get(f"/admin/catalog/modelentry/?q={model_id}").text
    return re.search(r'href="(/admin/catalog/modelentry/\d+/change/)', changelist).group(1)


def set_enabled(admin: httpx.Client, model_id: str, enabled: bool) -> None:
    response = change_form(admin, change_path(admin, model_id), enabled="on" if enabled else None)
    assert "was changed successfully" in response.text


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The bundled model loaded at start-up, a copy of it to load on demand, 4 generations at once."""
    tmp_path = tmp_path_factory.mktemp("workers")
    server = start_server(
        tmp_path,
        setup=(ONE_STARTUP_MODEL, copy_entry(COPY, bundled_gguf())),
        LLM_MAX_CONCURRENT_REQUESTS="4",
        LLM_MAX_QUEUED_REQUESTS="8",
        LLM_ENGINE_STOP_TIMEOUT_SECONDS=str(STOP_TIMEOUT),
    )
    server.manage("createsuperuser", "--noinput", "--username", ADMIN_USER, "--email", "admin@example.com")
    server.log = tmp_path / "server.log"
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
    assert "Model local/corrupt could not be loaded: cannot reshape array" in error["message"]
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


@pytest.fixture(scope="module")
def cycling_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("cycles"), setup=(ONE_STARTUP_MODEL, copy_entry(COPY, bundled_gguf())))
    server.manage("createsuperuser", "--noinput", "--username", ADMIN_USER, "--email", "admin@example.com")
    yield server
    stop_server(server)


def test_disable_enable_cycles_leave_the_total_rss_of_one_loaded_model(cycling_server):
    server, pid = cycling_server, cycling_server.process.pid
    assert httpx.post(f"{server.url}/api/generate", json={"prompt": "Hello", "max_tokens": 4}, timeout=600).status_code == 200
    one_model = total_rss_mb(pid)
    web_alone = []
    with admin_session(server.url, ADMIN_USER, ADMIN_PASSWORD) as admin:
        for _ in range(CYCLES):
            set_enabled(admin, BUNDLED, False)
            wait_until(lambda: not worker_pids(pid), 30, "the unloaded model's worker exited")
            web_alone.append(rss_mb(pid))
            set_enabled(admin, BUNDLED, True)
            response = httpx.post(f"{server.url}/api/generate", json={"prompt": "Hello", "max_tokens": 4}, timeout=600)
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


def test_a_workers_lines_keep_their_level():
    """Its own records come as JSON lines; the engine's are text, coloured, with Rust's level names;
    anything else (a panic) is a warning."""
    record = json.dumps({"level": "WARNING", "logger": "generation.engine.runner", "message": "seed not applied"})
    assert parse_worker_line(record + "\n") == (logging.WARNING, "seed not applied")
    engine = ("\x1b[2m2026-11-25T17:45:02.207965Z\x1b[0m \x1b[33m WARN\x1b[0m \x1b[2mmistralrs_core::pipeline\x1b[0m"
              "\x1b[2m:\x1b[0m No chat template.\n")
    assert parse_worker_line(engine) == (logging.WARNING, "mistralrs_core::pipeline: No chat template.")
    assert parse_worker_line("thread 'main' panicked at src/lib.rs:1:1\n") == (
        logging.WARNING, "thread 'main' panicked at src/lib.rs:1:1"
    )
