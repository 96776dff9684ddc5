"""A worker over the memory limit is replaced without a gap, on the fake engine worker: the old one serves while
its replacement loads, then stops; a replacement that fails to load leaves it serving (the real workers, through a
server: tests/e2e/test_engine_workers.py)."""

import dataclasses
import logging

import pytest

from catalog.engine_settings import EngineConfig
from catalog.sampling import SamplingParams
from generation.engine import cache as cache_module
from generation.engine.cache import EngineCache
from tests.support.fake_worker import FakeEngine

CONFIG = EngineConfig(model_id="fake/base", source="bundled", location="fake", prefix_cache_n=4)
LIMIT_MB = 100


@pytest.fixture
def engine(monkeypatch) -> FakeEngine:
    fake = FakeEngine(hold_loads=True)
    monkeypatch.setattr(cache_module, "ModelWorker", fake.worker)
    return fake


@pytest.fixture
def cache(engine) -> EngineCache:
    cache = EngineCache(cache_dir="unused-by-fakes", max_loaded=2, worker_max_rss_mb=LIMIT_MB,
                        retry_after_failure=60)
    cache.events = []
    cache.listeners.append(lambda event, model_id, seconds: cache.events.append(event))
    return cache


async def generate(cache: EngineCache, engine: FakeEngine) -> int:
    """One generation as the service makes it (the model's worker from the cache); the pid of the worker that served."""
    worker = await cache.get(CONFIG)
    stream = await worker.stream("Hi", SamplingParams(max_tokens=3), keep_leading_whitespace=True,
                                 released=lambda: None)
    assert [event async for event in stream.events()][-1].completion_tokens == 3
    return engine.calls[-1].worker_pid


async def loaded(cache: EngineCache, engine: FakeEngine):
    """The model loaded in a first worker, under the limit."""
    first = cache.load_now(CONFIG)
    engine.workers[0].finish_load()
    worker = first.result()
    worker.rss = LIMIT_MB - 10
    assert await generate(cache, engine) == worker.pid and len(engine.workers) == 1
    return worker


def state(cache: EngineCache) -> dict:
    return cache.model_states()[CONFIG.model_id]


async def test_a_worker_over_the_limit_serves_until_its_replacement_is_ready_then_stops(cache, engine):
    first = await loaded(cache, engine)
    first.rss = LIMIT_MB + 1
    assert await generate(cache, engine) == first.pid  # this generation put it over: a replacement starts
    assert len(engine.workers) == 2
    second = engine.workers[1]
    assert not second.ready.done() and second.config == first.config
    # While the replacement loads, the model stays loaded in the first worker, which serves every request.
    for _ in range(3):
        assert await generate(cache, engine) == first.pid
    assert state(cache) == {"state": "loaded", "error": None, "load_seconds": 0.01, "pid": first.pid}
    assert len(engine.workers) == 2  # one replacement at a time
    assert cache.events == ["loading", "loaded"]
    second.finish_load()
    assert await generate(cache, engine) == second.pid
    assert first.stopping and first.replaced_by is second  # its generations finish; a late request goes to second
    assert state(cache)["pid"] == second.pid and cache.loaded_model_ids() == [CONFIG.model_id]
    assert cache.events == ["loading", "loaded", "loaded"]  # never "loading", "stopped" or "failed" in between


async def test_a_replacement_that_fails_to_load_leaves_the_old_worker_serving_and_backs_off(cache, engine, caplog):
    first = await loaded(cache, engine)
    first.rss = LIMIT_MB + 1
    engine.load_failures[CONFIG.model_id] = "out of memory"
    with caplog.at_level(logging.ERROR, logger="generation.engine.cache"):
        await generate(cache, engine)
        engine.workers[1].finish_load()
    assert "the replacement of the engine process of fake/base failed to load (out of memory)" in caplog.text
    assert await generate(cache, engine) == first.pid
    assert state(cache)["state"] == "loaded" and cache.failure(CONFIG) is None  # still listed and ready
    assert len(engine.workers) == 2  # no new try before the back-off
    assert "load_failed" not in cache.events
    failures = cache._replacement_failures
    failures[CONFIG.model_id] = dataclasses.replace(failures[CONFIG.model_id], retry_at=0.0)  # its back-off over
    del engine.load_failures[CONFIG.model_id]
    assert await generate(cache, engine) == first.pid  # and a new try
    engine.workers[2].finish_load()
    assert await generate(cache, engine) == engine.workers[2].pid


async def test_a_replacement_already_over_the_limit_is_kept(cache, engine, caplog):
    first = await loaded(cache, engine)
    first.rss = LIMIT_MB + 1
    await generate(cache, engine)
    second = engine.workers[1]
    second.rss = LIMIT_MB + 500  # a limit below what a fresh worker needs
    with caplog.at_level(logging.WARNING, logger="generation.engine.cache"):
        second.finish_load()
    assert "it will not be replaced (raise the limit)" in caplog.text
    for _ in range(3):
        assert await generate(cache, engine) == second.pid
    assert len(engine.workers) == 2


async def test_unloading_the_model_while_its_replacement_loads_stops_both(cache, engine):
    first = await loaded(cache, engine)
    first.rss = LIMIT_MB + 1
    await generate(cache, engine)
    second = engine.workers[1]
    assert cache.unload(CONFIG.model_id)
    assert first.stopping and second.stopping and first.replaced_by is None
    second.finish_load()
    assert cache.loaded_model_ids() == [] and state(cache)["state"] == "stopped"


async def test_requests_after_a_crash_of_the_old_worker_wait_for_its_replacement(cache, engine):
    first = await loaded(cache, engine)
    first.rss = LIMIT_MB + 1
    await generate(cache, engine)
    second = engine.workers[1]
    cache._worker_ended(first, "killed by SIGKILL")  # as its reader reports a death
    assert state(cache)["state"] == "crashed"
    waiting = cache.load_now(CONFIG)
    assert not waiting.done() and len(engine.workers) == 2  # no third start: the replacement's is under way
    second.finish_load()
    assert waiting.result() is second and state(cache)["pid"] == second.pid
