"""The concurrency limiter: slots, the bounded queue, timeouts, hand-over order."""

import asyncio

import pytest

from common.errors import Overloaded
from generation.core.limiter import ConcurrencyLimiter


async def test_slots_then_queue_then_refusal():
    limiter = ConcurrencyLimiter(max_active=2, max_queued=1, timeout=5)
    await limiter.acquire()
    await limiter.acquire()
    waiting = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0.01)
    assert (limiter.active, limiter.queued) == (2, 1)
    with pytest.raises(Overloaded) as refused:
        await limiter.acquire()
    assert refused.value.retry_after >= 1
    limiter.release()  # handed to the waiter, not freed
    await asyncio.wait_for(waiting, 1)
    assert (limiter.active, limiter.queued) == (2, 0)
    limiter.release()
    limiter.release()
    assert limiter.active == 0


async def test_a_waiter_that_times_out_is_refused_and_leaves_the_queue():
    limiter = ConcurrencyLimiter(max_active=1, max_queued=4, timeout=0.05)
    await limiter.acquire()
    with pytest.raises(Overloaded):
        await limiter.acquire()
    assert limiter.queued == 0
    limiter.release()
    assert limiter.active == 0


async def test_waiters_are_served_first_come_first_served():
    limiter = ConcurrencyLimiter(max_active=1, max_queued=3, timeout=5)
    await limiter.acquire()
    order = []

    async def wait(name):
        await limiter.acquire()
        order.append(name)

    tasks = [asyncio.ensure_future(wait(name)) for name in "abc"]
    await asyncio.sleep(0.01)
    for _ in "abc":
        limiter.release()
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c"]


async def test_a_cancelled_waiter_does_not_lose_the_slot():
    limiter = ConcurrencyLimiter(max_active=1, max_queued=2, timeout=5)
    await limiter.acquire()
    cancelled = asyncio.ensure_future(limiter.acquire())
    second = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0.01)
    cancelled.cancel()
    await asyncio.sleep(0.01)
    limiter.release()
    await asyncio.wait_for(second, 1)
    limiter.release()
    assert (limiter.active, limiter.queued) == (0, 0)


async def test_release_from_another_thread():
    limiter = ConcurrencyLimiter(max_active=1, max_queued=1, timeout=5)
    await limiter.acquire()
    waiting = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0.01)
    await asyncio.to_thread(limiter.release)
    await asyncio.wait_for(waiting, 1)
    assert limiter.active == 1
