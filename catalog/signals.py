"""Keep the loaded engines in step with the catalog.

An entry that is disabled or deleted is unloaded at once, in this process and, through
the channel layer, in the others (generation.catalog_events). An entry whose engine
settings changed is reloaded on its next request (the engine cache compares the whole
engine configuration on every request), so no signal is needed for that.
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from catalog.models import ModelEntry
from generation.catalog_events import withdraw_model


@receiver(post_save, sender=ModelEntry)
def withdraw_disabled_model(sender, instance: ModelEntry, **kwargs):
    if not instance.enabled:
        withdraw_model(instance.model_id)


@receiver(post_delete, sender=ModelEntry)
def withdraw_deleted_model(sender, instance: ModelEntry, **kwargs):
    withdraw_model(instance.model_id)
