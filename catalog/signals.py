"""Keep this process's loaded engines in step with the catalog.

An entry that is disabled or deleted is unloaded at once. An entry whose engine
settings changed is reloaded on its next request (the engine cache compares the whole
engine configuration on every request), so no signal is needed for that.
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from catalog.models import ModelEntry


@receiver(post_save, sender=ModelEntry)
def unload_disabled_model(sender, instance: ModelEntry, **kwargs):
    if not instance.enabled:
        from generation.service import engine_cache

        engine_cache().unload(instance.model_id)


@receiver(post_delete, sender=ModelEntry)
def unload_deleted_model(sender, instance: ModelEntry, **kwargs):
    from generation.service import engine_cache

    engine_cache().unload(instance.model_id)
