"""Models withdrawn from the catalog are unloaded by every process, through the channel layer.

A model disabled or deleted in the admin is refused at once everywhere (each request
reads the catalog), and unloaded at once by the process that saved the change (the
receivers below, of the catalog's model signals). Other processes (other replicas, other
pods) would keep its engine in memory until it is evicted. With Redis as the channel
layer (REDIS_URL), the change is also sent to a group that every server process listens
to, and each unloads the model too. The in-memory layer reaches no other process, so
then nothing is sent or listened for.

An entry whose engine settings changed needs no signal: the engine cache compares the
whole engine configuration on every request, and reloads the model on its next one.
"""

import asyncio
import contextlib
import logging
import threading

from asgiref.sync import async_to_sync
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers, get_channel_layer
from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from catalog.models import ModelEntry
from generation.service import engine_cache

logger = logging.getLogger(__name__)

GROUP = "catalog-changes"
# Membership is renewed this often (channels_redis forgets a member after a day anyway).
RENEW_MEMBERSHIP_SECONDS = 30
RETRY_SECONDS = 2


def withdraw_model(model_id: str) -> None:
    """Unload a model here, and in every other process when the channel layer reaches them."""
    engine_cache().unload(model_id)
    if not settings.REDIS_URL:
        return
    try:
        async_to_sync(get_channel_layer().group_send)(GROUP, {"type": "model.withdrawn", "model_id": model_id})
    except Exception:  # the admin's change stands; other processes unload on eviction instead
        logger.exception("could not tell the other processes that %s was withdrawn", model_id)


async def _retrying(action, what: str):
    """`await action()` until it succeeds; Redis may be restarting, or this process starved of CPU."""
    while True:
        try:
            return await action()
        except Exception as exc:
            logger.warning("%s failed (%s); retrying in %s s", what, exc, RETRY_SECONDS)
            await asyncio.sleep(RETRY_SECONDS)


@receiver(post_save, sender=ModelEntry)
def withdraw_disabled_model(sender, instance: ModelEntry, **kwargs):
    if not instance.enabled:
        withdraw_model(instance.model_id)


@receiver(post_delete, sender=ModelEntry)
def withdraw_deleted_model(sender, instance: ModelEntry, **kwargs):
    withdraw_model(instance.model_id)


async def _listen() -> None:
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
            if message.get("type") == "model.withdrawn" and engine_cache().unload(message["model_id"]):
                logger.info("unloaded model %s: withdrawn from the catalog", message["model_id"])
    finally:
        membership.cancel()


def listen_for_withdrawn_models_in_background() -> None:
    if settings.REDIS_URL:
        threading.Thread(target=asyncio.run, args=(_listen(),), name="catalog changes", daemon=True).start()
