"""A generation's events on their way from a worker's reader thread to the event loop that streams them.

The reader thread (generation.engine.channel) takes one frame of the worker at a time, the
messages that the worker had ready together: `add` collects what each generation gets from
it, `hand_over` gives it over with one call into each event loop, and the generation's
`GenerationStream.batches()` takes everything that has arrived by the time it looks, so that
its API writes it at once. Nothing waits for more: a batch is what is there.
"""

import asyncio
import contextlib
import queue
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from generation.engine import protocol
from generation.engine.types import Finished, TextDelta


async def one_by_one(batches: AsyncIterator[list]) -> AsyncIterator:
    """The events of a stream's `batches()`, one by one; the batches are closed with this iterator, not later."""
    async with contextlib.aclosing(batches) as opened:
        async for batch in opened:
            for event in batch:
                yield event


@dataclass(eq=False)
class OpenGeneration:
    """A generation under way on a worker's channel: where its events go, and who to tell when it is let go."""

    loop: asyncio.AbstractEventLoop
    # Lists of what arrived together: Admitted first, then TextDelta, Finished, or the error that ends it.
    events: asyncio.Queue
    released: Callable[[], None]
    prompt_tokens: int = 0  # once admitted


class GenerationStream:
    """A generation its worker admitted: the prompt's token count, the max_tokens it generates
    at most (fitted to the context), and its events (`batches()`, or `events()` one by one).

    Closing it (or dropping it unread) cancels the generation: a request still waiting at
    the prefill gate is never submitted, one in prefill is dropped at its first token
    (mistral.rs 0.9.5 cannot interrupt a prefill).
    """

    def __init__(self, outbox: queue.SimpleQueue, generation_id: int, events: asyncio.Queue,
                 admitted: protocol.Admitted, arrived: list):
        self.prompt_tokens = admitted.prompt_tokens
        self.max_tokens = admitted.max_tokens
        self._outbox = outbox
        self._id = generation_id
        self._events = events
        self._arrived = arrived  # what came with the Admitted, not yet taken
        self._over = False

    async def batches(self) -> AsyncIterator[list[TextDelta | Finished]]:
        """Text deltas, then one Finished, in lists of those that have arrived (never empty, never
        waiting for more than one); engine failures, the worker's death included, raise
        EngineFailed, after the events that came before them."""
        try:
            while not self._over:
                arrived = self._arrived or await self._events.get()
                while not self._events.empty():
                    arrived.extend(self._events.get_nowait())
                batch, self._arrived = [], []
                for position, item in enumerate(arrived):
                    if isinstance(item, Exception) and batch:
                        self._arrived = arrived[position:]  # raised at the next batch
                        break
                    self._over = isinstance(item, (Finished, Exception))
                    if isinstance(item, Exception):
                        raise item
                    batch.append(item)
                    if self._over:
                        break
                yield batch
        finally:
            self.close()

    def events(self) -> AsyncIterator[TextDelta | Finished]:
        """The events of `batches()`, one by one."""
        return one_by_one(self.batches())

    def close(self) -> None:
        """Cancel the generation unless it is over: the worker drops it, or never submits it."""
        if not self._over:
            self._over = True
            self._outbox.put(protocol.Cancel(self._id))  # SimpleQueue: safe from __del__

    def __del__(self):
        self.close()


def add(arrived: dict[OpenGeneration, list], generation: OpenGeneration | None, item) -> None:
    if generation is not None:
        arrived.setdefault(generation, []).append(item)


def hand_over(arrived: dict[OpenGeneration, list]) -> None:
    """Give each generation what arrived for it: one call into each event loop, whatever the count."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for generation, items in arrived.items():
        by_loop.setdefault(generation.loop, []).append((generation.events, items))
    for loop, deliveries in by_loop.items():
        try:
            loop.call_soon_threadsafe(_put, deliveries)
        except RuntimeError:  # that event loop is closed: nobody is listening any more
            pass


def _put(deliveries: list[tuple[asyncio.Queue, list]]) -> None:
    for events, items in deliveries:
        events.put_nowait(items)
