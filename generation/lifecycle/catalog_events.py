"""Catalog changes and the admin's load commands, told to every server process through the
channel layer.

A catalog change is seen at once by the process that saved it: it forgets the catalog it
kept in memory (catalog.snapshot), and unloads a model that was disabled or deleted (the
runtime's receivers of the catalog's signals, generation.lifecycle.runtime). Other processes (other
replicas, other pods) would see it only at their next heartbeat, which compares the
catalog's version, and keep a withdrawn model's engine in memory until it is evicted. With
Redis as the channel layer (REDIS_URL), each change is also sent to a group that every
server process listens to (`CatalogListener`): each forgets its catalog, and unloads the
withdrawn model, at once. The
admin's "load now", "unload" and "reload" go the same way (as a wake-up for each
process's heartbeat, which reads the command from the database; without Redis the
heartbeat finds it at its next beat). The in-memory layer reaches no other process, so
then nothing is sent or listened for.

An entry whose engine settings changed needs no signal: the engine cache compares the
whole engine configuration on every request, and reloads the model on its next one.
"""

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from asgiref.sync import async_to_sync
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers, get_channel_layer
from django.conf import settings

logger = logging.getLogger(__name__)

GROUP = "catalog-changes"
# Membership is renewed this often (channels_redis forgets a member after a day anyway).
RENEW_MEMBERSHIP_SECONDS = 30
RETRY_SECONDS = 2


def tell_every_process(message: dict) -> None:
    """Send `message` to every server process's listener (this one's included), with Redis."""
    if not settings.REDIS_URL:
        return
    try:
        async_to_sync(get_channel_layer().group_send)(GROUP, message)
    except Exception:  # the change stands; other processes see it on eviction or at their next heartbeat
        logger.exception("could not tell the other processes: %s", message)


async def _retrying(action, what: str):
    """`await action()` until it succeeds; Redis may be restarting, or this process starved of CPU."""
    while True:
        try:
            return await action()
        except Exception as exc:
            logger.warning("%s failed (%s); retrying in %s s", what, exc, RETRY_SECONDS)
            await asyncio.sleep(RETRY_SECONDS)


async def _listen(handle: Callable[[dict], None]) -> None:
    # A layer of its own: a channels_redis layer receives on one event loop only, and
    # the WebSocket consumers receive on the server's. Its channel outlives connection
    # failures: what was sent meanwhile waits in Redis.
    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    channel = await layer.new_channel()

    # Group membership lives in Redis: a Redis restart (without persistence) forgets it.
    # It is renewed often, and at once after a failed receive, which is how a restart shows.
    rejoin = asyncio.Event()

    async def keep_membership():
        while True:
            await _retrying(lambda: layer.group_add(GROUP, channel), "joining the catalog change group")
            rejoin.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rejoin.wait(), RENEW_MEMBERSHIP_SECONDS)

    membership = asyncio.create_task(keep_membership())
    try:
        while True:
            try:
                message = await layer.receive(channel)
            except Exception as exc:
                logger.warning("receiving catalog changes failed (%s); retrying in %s s", exc, RETRY_SECONDS)
                rejoin.set()
                await asyncio.sleep(RETRY_SECONDS)
                continue
            try:
                handle(message)
            except Exception:
                logger.exception("handling %s failed", message)
    finally:
        membership.cancel()


class CatalogListener:
    """Receives what other processes tell every process, and passes each message to `handle`."""

    def __init__(self, handle: Callable[[dict], None]):
        self.handle = handle
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=asyncio.run, args=(_listen(self.handle),), name="catalog changes",
                                            daemon=True)
            self._thread.start()
