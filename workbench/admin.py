"""The catalog's model pages in the admin."""

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string

from catalog.models import ModelEntry
from workbench.forms import ModelEntryForm
from workbench.load_state import LoadStateAdmin
from workbench.model_checks import check_files

# What the file panel shows of a GGUF's metadata, in this order.
METADATA_SHOWN = (
    ("name", "Name"),
    ("architecture", "Architecture"),
    ("size_label", "Size"),
    ("parameters", "Parameters"),
    ("quantization", "Quantization"),
    ("context_length", "Context length"),
    ("bos_token", "Beginning-of-text token"),
    ("eos_token", "End-of-text token"),
    ("end_of_turn_token", "End-of-turn token"),
    ("end_of_message_token", "End-of-message token"),
)


@admin.register(ModelEntry)
class ModelEntryAdmin(LoadStateAdmin, admin.ModelAdmin):
    form = ModelEntryForm
    change_form_template = "workbench/modelentry_change_form.html"  # adds "Try in playground"
    list_display = ("model_id", "display_name", "size", "source", "in_situ_quant", "enabled", "load_at_startup")
    list_filter = ("enabled", "load_at_startup", "source", "in_situ_quant")
    list_editable = ("enabled",)
    search_fields = ("model_id", "display_name", "description")
    readonly_fields = ("file_metadata", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("model_id", "aliases", "display_name", "description", "size", "capabilities", "enabled")}),
        ("Weights", {
            "fields": ("source", "location", "filename", "tokenizer_json", "context_length", "file_metadata"),
        }),
        ("Chat", {"fields": ("chat_template", "bos_token", "eos_token", "chat_stop_sequences")}),
        ("Engine", {
            "fields": ("in_situ_quant", "max_seqs", "kv_cache_memory", "kv_cache_block_size", "seed", "load_at_startup"),
        }),
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

    class Media:
        js = ("workbench/model_entry.js",)
        css = {"all": ("workbench/workbench.css",)}

    @admin.display(description="What the file says")
    def file_metadata(self, entry: ModelEntry):
        """The checks' verdict on the saved entry's files, and the GGUF's own metadata, with a
        button that copies its chat template and special tokens into the form."""
        if entry.pk is None:
            return "Read from the file once the entry is saved."
        try:
            report = check_files(entry)
        except ValidationError as exc:
            return render_to_string("workbench/file_metadata.html", {"errors": exc.messages})
        metadata = report.metadata
        rows = [
            (label, f"{metadata[key]:,}" if key == "parameters" else metadata[key])
            for key, label in METADATA_SHOWN
            if metadata.get(key) not in (None, "")
        ]
        if report.size_bytes is not None:
            rows.append(("File size", f"{report.size_bytes / 1e6:,.1f} MB"))
        # What the button copies into the form (workbench/static/workbench/model_entry.js).
        template_fields = {name: metadata.get(name) or "" for name in ("chat_template", "bos_token", "eos_token")}
        return render_to_string("workbench/file_metadata.html", {
            "path": report.path, "note": report.note, "rows": rows,
            "chat_template": metadata.get("chat_template"), "template_fields": template_fields,
        })
