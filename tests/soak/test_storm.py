"""A storm against a real Daphne process with the real bundled model: 100 SSE clients and
30 WebSocket clients at once, half of each leaving mid-stream.

Then: every client that stayed got a complete stream or a clean 429 (nothing else: no
5xx, no cut stream, no hang: each client has CLIENT_TIMEOUT), the server answers a normal
request, the in-flight and queued gauges are back to 0, the server logged no error, and
the web process's RSS stays within RSS_GROWTH_BOUND_MB of what it was before the storm, and
its engine workers' within LLM_ENGINE_WORKER_MAX_RSS_MB (the engine's prefix cache, on for the
bundled models, grows by some MB per generation by design, up to that bound).

The server (the concurrent preset, shared) runs 4 generations at once with 16 waiting
places and a 10 s queue timeout, so that some clients are served, some wait, and most are
refused at once. On the 2-core development machine the storm took 5 to 21 s (the longer
when other processes competed for the CPU) and the module 20 to 55 s, the server's start
included.
"""

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from dataclasses import dataclass, field
from functools import partial

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.support.processes import rss_mb, total_rss_mb, worker_pids
from tests.support.sse_client import parse_events

SSE_CLIENTS = 100
WS_CLIENTS = 30
MAX_TOKENS = 8
# A stayer waits at most QUEUE_TIMEOUT for a slot, then generates 8 tokens: anything
# still open after this long is a hang.
CLIENT_TIMEOUT = 45.0
# Leavers that leave before any byte wait this long (uniform), then close.
LEAVE_DELAY = (0.05, 1.0)
# Measured on the 2-core, 24 GB development machine (CPU, mistral.rs 0.9.5), 10 runs, the prefix
# cache off: RSS of the server and its worker 1,464 to 1,506 MB before the storm (after a
# warm-up request), +26 to +81 MB after it. 300 MB is over 3 times the largest growth seen, room
# for allocator noise and a busier batch, yet a leak of 2.5 MB per client (130 of them here)
# would cross it; it bounds the web process (the workers' bound is the memory limit).
RSS_GROWTH_BOUND_MB = 300
# The bundled model and Django alone are over this: a smaller RSS means we measured the
# wrong processes (not Daphne's and its engine worker's).
RSS_MINIMUM_MB = 500

COMPLETE, REFUSED, LEFT = "complete", "429", "left"

TOPICS = ["the sea", "a red fox", "winter", "the moon", "bread", "a river", "trains", "music", "gardens", "rain"]


def prompt(i: int) -> str:
    return f"Story {i}: a short sentence about {TOPICS[i % len(TOPICS)]} is"


@dataclass
class Outcome:
    kind: str  # "sse" or "ws"
    index: int
    leaves: str | None  # None (stays), "after_first_delta" or "after_delay"
    result: str = ""  # COMPLETE, REFUSED, LEFT, or a description of what went wrong
    detail: str = ""
    text: str = ""
    tokens_generated: int = 0
    seconds: float = 0.0  # from the client's start to its end

    @property
    def stays(self) -> bool:
        return self.leaves is None


@dataclass
class Storm:
    outcomes: list[Outcome]
    duration: float
    rss_before_mb: float
    web_rss_before_mb: float
    server_pid: int
    log_offset: int  # where the server log was when the storm began
    counts: dict = field(default_factory=dict)


def leave_plan(i: int) -> str | None:
    """Every other client leaves; of the leavers, every other after its first delta."""
    if i % 2 == 0:
        return None
    return "after_first_delta" if i % 4 == 1 else "after_delay"


def gauges(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    values = {}
    for name in ("llm_requests_in_flight", "llm_requests_queued"):
        match = re.search(rf"^{name} ([0-9.eE+-]+)$", text, re.MULTILINE)
        assert match, f"{name} is missing from /metrics"
        values[name] = float(match.group(1))
    return values


def wait_for_idle_gauges(url: str, timeout: float = 30) -> dict[str, float]:
    """The gauges, once both are 0 (an abandoned request may still be in its prefill), or
    as they were when the time ran out."""
    deadline = time.monotonic() + timeout
    while True:
        values = gauges(url)
        if not any(values.values()) or time.monotonic() > deadline:
            return values
        time.sleep(0.5)


# --- clients --------------------------------------------------------------------------------


async def sse_events(response: httpx.Response):
    """Events as they arrive, parsed by the tests' spec-following parser, block by block."""
    block = []
    async for line in response.aiter_lines():
        block.append(line)
        if line == "":
            events, _ = parse_events(block, time.monotonic)
            block = []
            for event in events:
                yield event
    if any(line and not line.startswith(":") for line in block):
        yield "unterminated"  # bytes of an event that never ended


async def sse_client(http: httpx.AsyncClient, outcome: Outcome) -> None:
    body = {"prompt": prompt(outcome.index), "max_tokens": MAX_TOKENS, "temperature": 0}
    async with http.stream("POST", "/api/generate/stream", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            outcome.result, outcome.detail = clean_refusal(response)
            return
        deltas, done = [], None
        async for event in sse_events(response):
            if event == "unterminated":
                outcome.result = "cut: an unterminated event at the end of the stream"
                return
            if done is not None:
                outcome.result, outcome.detail = "an event after done", f"{event.event}: {event.data[:200]}"
                return
            if event.event == "message":
                deltas.append(event.data)
                if outcome.leaves == "after_first_delta":
                    outcome.result = LEFT
                    return
            elif event.event == "done":
                done = json.loads(event.data)
            else:
                outcome.result, outcome.detail = f"event {event.event}", event.data[:300]
                return
        judge_end(outcome, deltas, done)


def clean_refusal(response: httpx.Response) -> tuple[str, str]:
    detail = f"HTTP {response.status_code}: {response.text[:300]}"
    if response.status_code != 429:
        return f"HTTP {response.status_code}", detail
    if not response.headers.get("content-type", "").startswith("application/json"):
        return "429 not JSON", detail
    if not response.headers.get("retry-after", "").isdigit() or int(response.headers["retry-after"]) < 1:
        return "429 without a Retry-After", detail
    if response.json().get("error", {}).get("code") != "overloaded":
        return "429 not overloaded", detail
    return REFUSED, ""


def judge_end(outcome: Outcome, deltas: list[str], done: dict | None) -> None:
    """A complete stream: deltas, then a done that counts at least one token, at most max_tokens."""
    outcome.text = "".join(deltas)
    if done is None:
        outcome.result = "cut: the stream ended without done"
        outcome.detail = f"{len(deltas)} deltas: {outcome.text[:200]!r}"
        return
    outcome.tokens_generated = done.get("tokens_generated", 0)
    if not deltas or not outcome.text:
        outcome.result, outcome.detail = "done without text", json.dumps(done)
    elif not 1 <= outcome.tokens_generated <= MAX_TOKENS or len(deltas) > outcome.tokens_generated:
        outcome.result, outcome.detail = "done with wrong counts", f"{len(deltas)} deltas, {json.dumps(done)}"
    elif done.get("finish_reason") not in ("length", "stop"):
        outcome.result, outcome.detail = "done with a wrong finish_reason", json.dumps(done)
    else:
        outcome.result = COMPLETE


async def ws_client(url: str, outcome: Outcome) -> None:
    """One connection, one request."""
    request_id = f"ws-{outcome.index}"
    message = {"type": "generate", "id": request_id, "prompt": prompt(1000 + outcome.index),
               "max_tokens": MAX_TOKENS, "temperature": 0}
    async with connect(url.replace("http", "ws", 1) + "/ws/generate/", open_timeout=CLIENT_TIMEOUT,
                       close_timeout=5) as socket:
        await socket.send(json.dumps(message))
        deltas, done = [], None
        while done is None:
            try:
                reply = json.loads(await socket.recv())
            except websockets.ConnectionClosed as exc:
                outcome.result, outcome.detail = "cut: the socket closed before done", repr(exc)
                return
            if reply.get("id") != request_id:
                outcome.result, outcome.detail = "a reply with another id", json.dumps(reply)[:300]
                return
            if reply["type"] == "delta":
                deltas.append(reply["text"])
                if outcome.leaves == "after_first_delta":
                    outcome.result = LEFT
                    return
            elif reply["type"] == "done":
                done = reply
            elif reply["type"] == "error" and reply["error"]["code"] == "overloaded":
                outcome.result = REFUSED
                return
            else:
                outcome.result, outcome.detail = f"message {reply['type']}", json.dumps(reply)[:300]
                return
        judge_end(outcome, deltas, done)


async def run_client(client, outcome: Outcome) -> Outcome:
    """Run `client(outcome)` within CLIENT_TIMEOUT, or leave after a random delay; every
    exception becomes the outcome."""
    started = time.monotonic()
    task = asyncio.ensure_future(client(outcome))
    try:
        if outcome.leaves == "after_delay":
            done, _ = await asyncio.wait({task}, timeout=random.uniform(*LEAVE_DELAY))
            if not done:
                task.cancel()  # closes its connection on the way out
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                outcome.result = outcome.result or LEFT
                return outcome
        await asyncio.wait_for(task, CLIENT_TIMEOUT)
    except TimeoutError:
        outcome.result, outcome.detail = "hang", f"no end within {CLIENT_TIMEOUT} s"
    except Exception as exc:  # noqa: BLE001 (a refused connection, a reset, a protocol error: none is acceptable)
        outcome.result, outcome.detail = f"exception {type(exc).__name__}", repr(exc)[:300]
    finally:
        outcome.seconds = time.monotonic() - started
    return outcome


async def storm_clients(url: str) -> list[Outcome]:
    # One HTTP client for the 100 SSE clients (one per client would spend seconds building
    # SSL contexts one after the other before the storm begins), but no keep-alive: each
    # request has a TCP connection of its own, which a leaver closes when it leaves.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT, limits=limits) as http:
        clients = [
            run_client(partial(sse_client, http), Outcome("sse", i, leave_plan(i))) for i in range(SSE_CLIENTS)
        ] + [
            run_client(partial(ws_client, url), Outcome("ws", i, leave_plan(i))) for i in range(WS_CLIENTS)
        ]
        return await asyncio.gather(*clients)


# --- the storm ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def storm(concurrent_server):
    # `manage.py serve` runs Daphne in its own process (no fork, no exec); the engine runs in its worker.
    pid = concurrent_server.process.pid
    # A warm-up request first: the engine's first generation allocates its buffers, which
    # belong to the baseline rather than to the storm.
    warm_up = httpx.post(f"{concurrent_server.url}/api/generate", json={"prompt": "Hello", "max_tokens": MAX_TOKENS},
                         timeout=60)
    assert warm_up.status_code == 200, warm_up.text
    assert wait_for_idle_gauges(concurrent_server.url) == {"llm_requests_in_flight": 0, "llm_requests_queued": 0}
    rss_before, web_rss_before = total_rss_mb(pid), rss_mb(pid)
    assert rss_before > RSS_MINIMUM_MB, f"process {pid} has {rss_before:.0f} MB: not the server with its model"

    log_offset = concurrent_server.log.stat().st_size

    random.seed(20240611)
    httpx_logger = logging.getLogger("httpx")
    httpx_level = httpx_logger.level
    httpx_logger.setLevel(logging.WARNING)  # not 130 lines of "HTTP Request: ..."
    started = time.monotonic()
    try:
        outcomes = asyncio.run(storm_clients(concurrent_server.url))
    finally:
        httpx_logger.setLevel(httpx_level)
    duration = time.monotonic() - started
    idle = wait_for_idle_gauges(concurrent_server.url)
    drained = time.monotonic() - started - duration

    counts = {}
    for outcome in outcomes:
        key = (outcome.kind, f"leaves {outcome.leaves}" if outcome.leaves else "stays", outcome.result)
        counts[key] = counts.get(key, 0) + 1
    print(f"\nstorm: {SSE_CLIENTS} SSE + {WS_CLIENTS} WebSocket clients in {duration:.1f} s, gauges "
          f"{idle} {drained:.1f} s later; RSS before {rss_before:.0f} MB")
    for key in sorted(counts):
        print(f"  {' '.join(key)}: {counts[key]}")
    for result in (COMPLETE, REFUSED):
        times = sorted(o.seconds for o in outcomes if o.result == result)
        if times:
            print(f"  {result}: {times[0]:.1f} to {times[-1]:.1f} s per client")
    return Storm(outcomes, duration, rss_before, web_rss_before, pid, log_offset, counts)


def test_every_client_that_stayed_got_a_complete_stream_or_a_clean_429(storm):
    stayers = [outcome for outcome in storm.outcomes if outcome.stays]
    assert len(stayers) == SSE_CLIENTS // 2 + WS_CLIENTS // 2
    wrong = [outcome for outcome in stayers if outcome.result not in (COMPLETE, REFUSED)]
    assert not wrong, "\n".join(f"{o.kind} {o.index}: {o.result} {o.detail}" for o in wrong)
    # The storm is big enough to be refused in part, and small enough to be served in part.
    # (Which kind gets the 20 places depends on arrival order: WebSocket clients, with no
    # HTTP middleware to go through, sometimes take them all.)
    assert any(o.result == COMPLETE for o in stayers)
    assert any(o.result == REFUSED for o in stayers)


def test_clients_that_left_saw_nothing_wrong_before_leaving(storm):
    leavers = [outcome for outcome in storm.outcomes if not outcome.stays]
    wrong = [outcome for outcome in leavers if outcome.result not in (LEFT, COMPLETE, REFUSED)]
    assert not wrong, "\n".join(f"{o.kind} {o.index}: {o.result} {o.detail}" for o in wrong)
    # Leavers do leave. (How many leave after a first delta, rather than while waiting, depends
    # on how many of them got one of the 20 places: 0 to 10 of 33 in the runs measured.)
    assert any(o.result == LEFT for o in leavers)


def test_the_gauges_return_to_zero(storm, concurrent_server):
    assert wait_for_idle_gauges(concurrent_server.url) == {"llm_requests_in_flight": 0, "llm_requests_queued": 0}


def test_the_server_answers_a_normal_request(storm, concurrent_server):
    response = httpx.post(
        f"{concurrent_server.url}/api/generate",
        json={"prompt": "The capital of France is", "max_tokens": MAX_TOKENS, "temperature": 0},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json()["tokens_generated"] == MAX_TOKENS
    assert httpx.get(f"{concurrent_server.url}/health/ready", timeout=10).status_code == 200


def test_the_server_logged_no_error_during_the_storm(storm, concurrent_server):
    """A failure no client saw (an exception while cleaning up after a client that left) is
    still a defect."""
    with open(concurrent_server.log, "rb") as log:
        log.seek(storm.log_offset)
        lines = log.read().decode("utf-8", errors="replace").splitlines(keepends=True)
    # Django's JSON lines ("level": "ERROR") and the engine's (Rust's tracing, "ERROR" in colour).
    errors = [line for line in lines if "ERROR" in line or "CRITICAL" in line or "Traceback" in line]
    assert not errors, "".join(errors[:5])[:5000]


def _rss_or_0(pid: int) -> float:
    try:
        return rss_mb(pid)
    except (FileNotFoundError, ProcessLookupError, AssertionError):
        return 0.0  # a replaced worker that exited meanwhile


def test_rss_stays_within_its_bound(storm, concurrent_server):
    from django.conf import settings

    wait_for_idle_gauges(concurrent_server.url)
    rss_after, web_rss_after = total_rss_mb(storm.server_pid), rss_mb(storm.server_pid)
    workers = [_rss_or_0(pid) for pid in worker_pids(storm.server_pid)]
    print(f"\nstorm: RSS before {storm.rss_before_mb:.0f} MB, after {rss_after:.0f} MB "
          f"({rss_after - storm.rss_before_mb:+.0f} MB); the web process {storm.web_rss_before_mb:.0f} -> "
          f"{web_rss_after:.0f} MB (bound +{RSS_GROWTH_BOUND_MB} MB), its workers {[round(mb) for mb in workers]} MB")
    assert web_rss_after - storm.web_rss_before_mb < RSS_GROWTH_BOUND_MB
    # Past the limit a worker is replaced after its generation: one generation's growth at most.
    assert all(mb < settings.LLM_ENGINE_WORKER_MAX_RSS_MB + 100 for mb in workers), workers
