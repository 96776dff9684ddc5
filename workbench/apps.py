from django.apps import AppConfig


class WorkbenchConfig(AppConfig):
    """The admin as a model workbench: the catalog's model pages, with the files' checks and
    metadata, each process's load state and actions, a playground, and usage charts."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "workbench"
