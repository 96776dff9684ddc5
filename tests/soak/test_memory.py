"""Memory stays bounded under steady traffic, and its bound costs no generation.

mistral.rs 0.9.5's prefix cache, which the bundled models use (4 sequences), does not bound its
memory: a worker grows by about 6 MB (Gemma) to 12 MB (SmolLM2) per generation of these prompts,
without levelling off. With LLM_ENGINE_WORKER_MAX_RSS_MB (2048 MB by default) a worker past it is
replaced without a gap: over many generations of varied prompts, the engine workers never hold much
more than the limit, the bundled model's worker is replaced again and again, and every generation
succeeds.

The server here has a limit of its own, about 250 MB above a fresh worker of the bundled SmolLM2
(about 450 MB; it grows as Gemma's does, and its replacements load in 1.5 s instead of 8): a
worker reaches it in about 20 generations, so 100 generations go through several workers in
turn. At the default limit the first replacement of Gemma's worker comes after about 140
generations (500 took 3 minutes of `make test`); the 500 two-turn chats of docs/performance.md
measured it.
"""

import random
import statistics
import time

import httpx
import pytest

from tests.support.processes import rss_mb, total_rss_mb, worker_pids
from tests.support.server import SMALL_MODEL, start_server, stop_server
from tests.support.workers import ready

GENERATIONS = 100
LIMIT_MB = 700
SAMPLE_EVERY = 10
MODEL = SMALL_MODEL
# What one generation can add past the limit before its worker is replaced, and the ten generations between
# two samples while the replacement loads (about 12 MB each, measured on the 2-core machine).
OVER_THE_LIMIT_MB = 150


def varied_prompt(rng: random.Random) -> str:
    words = ["river", "stone", "light", "market", "engine", "winter", "paper", "garden", "signal", "cloud"]
    return " ".join(rng.choice(words) for _ in range(rng.randint(5, 60)))


@pytest.fixture(scope="module")
def bounded_server(tmp_path_factory):
    """A memory limit that no preset has: reached in tens of generations, not hundreds."""
    server = start_server(tmp_path_factory.mktemp("bounded"), startup_models=(MODEL,),
                          LLM_ENGINE_WORKER_MAX_RSS_MB=str(LIMIT_MB))
    yield server
    stop_server(server)


def test_rss_stays_bounded_over_many_generations_and_every_generation_succeeds(bounded_server):
    rng = random.Random(7)
    pid = bounded_server.process.pid
    pids, peak_worker, peak_total, latencies = set(), 0.0, 0.0, []
    with httpx.Client(base_url=bounded_server.url, timeout=120) as client:
        for i in range(GENERATIONS):
            started = time.perf_counter()
            request = {"prompt": varied_prompt(rng), "max_tokens": 2, "model": MODEL}
            response = client.post("/api/generate", json=request)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            if i % SAMPLE_EVERY == 0:
                pids.add(ready(bounded_server.url)["models"][MODEL]["pid"])
                for worker in worker_pids(pid):
                    try:
                        peak_worker = max(peak_worker, rss_mb(worker))
                    except (FileNotFoundError, ProcessLookupError, AssertionError):
                        pass  # it exited in the meantime
                peak_total = max(peak_total, total_rss_mb(pid))
    print(f"\n{GENERATIONS} generations: {len(pids)} workers of {MODEL} in turn, the largest worker "
          f"{peak_worker:.0f} MB (limit {LIMIT_MB} MB), the server and its workers at most {peak_total:.0f} MB; "
          f"latency median {statistics.median(latencies):.2f} s, slowest {max(latencies):.2f} s")
    assert peak_worker < LIMIT_MB + OVER_THE_LIMIT_MB
    assert len(pids) >= 3  # the bound was reached and enforced again and again, not just never approached
