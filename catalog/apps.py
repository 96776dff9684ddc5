from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Model catalog"

    def ready(self):
        from catalog import snapshot

        snapshot.connect_receivers()
