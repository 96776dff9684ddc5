from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class GenerationConfig(AppConfig):
    name = "generation"
    verbose_name = "Generation"

    def ready(self):
        # The runtime's receivers of the catalog's signals (after the catalog's own, which
        # forget its snapshot: the catalog app is ready first), in the order they run.
        from catalog.models import ModelEntry, ServiceSettings
        from generation.lifecycle import runtime

        for model in (ModelEntry, ServiceSettings):
            for signal, event in ((post_save, "saved"), (post_delete, "deleted")):
                signal.connect(runtime.tell_every_process_the_catalog_changed, sender=model,
                               dispatch_uid=f"tell every process {model.__name__} {event}")
        post_save.connect(runtime.withdraw_disabled_model, sender=ModelEntry, dispatch_uid="withdraw disabled model")
        post_delete.connect(runtime.withdraw_deleted_model, sender=ModelEntry, dispatch_uid="withdraw deleted model")
