from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Model catalog"

    def ready(self):
        # Signal receivers are connected here, in every app (Django's advice): the one place to look.
        from catalog import snapshot
        from catalog.models import ModelEntry, ServiceSettings

        for model in (ModelEntry, ServiceSettings):
            for signal, event in ((post_save, "saved"), (post_delete, "deleted")):
                signal.connect(snapshot.forget_now_and_when_committed, sender=model,
                               dispatch_uid=f"catalog snapshot {model.__name__} {event}")
