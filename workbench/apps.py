from django.apps import AppConfig


class WorkbenchConfig(AppConfig):
    """The admin as a model workbench: the catalog's model pages, with the files' checks and
    metadata, each process's load state and actions, and a playground (usage charts are
    access's)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "workbench"
