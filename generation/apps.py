from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
    verbose_name = "Generation"

    def ready(self):
        from generation import runtime  # noqa: F401  (connects its receivers of the catalog's signals)
