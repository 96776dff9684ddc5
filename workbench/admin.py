"""The catalog's model pages in the admin."""

from django.contrib import admin

from catalog.models import ModelEntry
from workbench.load_state import LoadStateAdmin


@admin.register(ModelEntry)
class ModelEntryAdmin(LoadStateAdmin, admin.ModelAdmin):
    list_display = ("model_id", "display_name", "size", "source", "in_situ_quant", "enabled", "load_at_startup")
    list_filter = ("enabled", "load_at_startup", "source", "in_situ_quant")
    list_editable = ("enabled",)
    search_fields = ("model_id", "display_name", "description")
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("model_id", "display_name", "description", "size", "capabilities", "enabled")}),
        ("Weights", {"fields": ("source", "location", "filename", "tokenizer_json", "context_length")}),
        ("Chat", {"fields": ("chat_template", "bos_token", "eos_token", "chat_stop_sequences")}),
        ("Engine", {"fields": ("in_situ_quant", "max_seqs", "seed", "load_at_startup")}),
        (
            "Default sampling",
            {
                "fields": (
                    "default_temperature",
                    "default_top_p",
                    "default_top_k",
                    "default_max_tokens",
                    "default_repetition_penalty",
                )
            },
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )
