"""A process-wide bound on generations in flight, with a bounded waiting queue.

Requests past `max_active` wait, first come first served, in a queue of at most
`max_queued` places for at most `timeout` seconds; past either bound they are refused
with `Overloaded` (429 with Retry-After). A short queue absorbs bursts without a client
retry; refusing beyond it keeps waiting times bounded instead of letting latency grow
without limit on a machine that generates one token stream at a time.

Unlike asyncio.Semaphore it is not tied to one event loop, and `release` may be called
from any thread.
"""

import asyncio
import threading
from collections import deque
from collections.abc import Callable

from common.errors import Overloaded


class ConcurrencyLimiter:
    def __init__(self, *, max_active: int, max_queued: int, timeout: float):
        self.max_active = max_active
        self.max_queued = max_queued
        self.timeout = timeout
        self._lock = threading.Lock()
        self._active = 0
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = deque()
        self._refusal: Callable[[], Exception] | None = None  # set by close()

    @property
    def active(self) -> int:
        return self._active

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def _overloaded(self) -> Overloaded:
        return Overloaded(
            f"The server is busy: {self.max_active} generations running and {len(self._waiters)} waiting. "
            "Retry later.",
            retry_after=max(1, round(self.timeout / 2)) if self.timeout else 1,
        )

    def close(self, refusal: Callable[[], Exception]) -> None:
        """Refuse every later `acquire` with `refusal()`; those already waiting keep their places."""
        with self._lock:
            self._refusal = refusal

    def refuse_waiting(self, error: Exception) -> None:
        """End the wait of every queued request with `error`."""
        with self._lock:
            waiters, self._waiters = list(self._waiters), deque()
        for loop, waiter in waiters:
            try:
                loop.call_soon_threadsafe(_refuse, waiter, error)
            except RuntimeError:  # that waiter's loop is closed
                continue

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._refusal is not None:
                raise self._refusal()
            if self._active < self.max_active and not self._waiters:
                self._active += 1
                return
            if len(self._waiters) >= self.max_queued:
                raise self._overloaded()
            waiter = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            with self._lock:
                granted = waiter.done() and not waiter.cancelled() and waiter.exception() is None
                if not granted:
                    # Cancelled, a slot already on its way (see _grant) is passed on.
                    waiter.cancel()
                    if (loop, waiter) in self._waiters:
                        self._waiters.remove((loop, waiter))
            if granted:  # the slot arrived as we gave up: pass it on
                self.release()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise self._overloaded() from None

    def release(self) -> None:
        """Give the slot to the next waiter, or free it."""
        with self._lock:
            while self._waiters:
                loop, waiter = self._waiters.popleft()
                if waiter.cancelled():
                    continue
                try:
                    loop.call_soon_threadsafe(_grant, self, waiter)
                    return
                except RuntimeError:  # that waiter's loop is closed
                    continue
            self._active -= 1


def _refuse(waiter: asyncio.Future, error: Exception) -> None:
    if not waiter.done():
        waiter.set_exception(error)


def _grant(limiter: ConcurrencyLimiter, waiter: asyncio.Future) -> None:
    if waiter.done():  # it gave up in the meantime
        limiter.release()
    else:
        waiter.set_result(None)
