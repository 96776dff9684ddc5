"""Graceful drain: what the service does between SIGTERM and its exit.

A rollout, a scale-down or a node drain sends SIGTERM to every pod it replaces. Without a
drain, Daphne cancels every request at once, and streams are cut without a final event.
With it (`drain`, called by the server before it stops):

1. readiness answers 503 at once, so the load balancer stops sending new requests;
2. new generations are refused with 503 `shutting_down` and `Retry-After`, so that
   clients retry on another replica; other endpoints keep answering;
3. generations in flight, and those already waiting for a slot, run on for up to
   LLM_SHUTDOWN_GRACE_SECONDS;
4. what is still running then ends with its API's error event (`shutting_down`), never a
   silent cut, and the server stops.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from common.errors import ShuttingDown
from generation.lifecycle.runtime import current

logger = logging.getLogger(__name__)

# How long the error events of aborted generations get to reach their clients.
ABORT_FLUSH_SECONDS = 3.0
POLL_SECONDS = 0.1


def shutting_down_error() -> ShuttingDown:
    return ShuttingDown("The server is shutting down. Retry on another replica.", retry_after=1)


async def drain(grace_seconds: float, *, open_responses: Callable[[], int]) -> None:
    """Refuse new work, let the work in flight finish within the grace, end the rest.

    `open_responses` counts the HTTP responses still being sent (a stream's last bytes are
    sent after its generation has let its slot go).
    """
    runtime = current()
    limiter = runtime.limiter
    runtime.draining.set()
    limiter.close(shutting_down_error)

    def busy() -> bool:
        return bool(limiter.active or limiter.queued or open_responses())

    logger.warning(
        "draining: %d generations running, %d waiting; up to %.0f s to finish",
        limiter.active, limiter.queued, grace_seconds,
    )
    await _wait_until(lambda: not busy(), grace_seconds)
    if busy():
        logger.warning("grace over: ending %d generations with an error event", limiter.active + limiter.queued)
        limiter.refuse_waiting(shutting_down_error())
        runtime.engine_cache.abort_streams(shutting_down_error())
        await _wait_until(lambda: not busy(), ABORT_FLUSH_SECONDS)
    logger.info("drained")


async def _wait_until(done: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)
