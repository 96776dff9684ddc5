"""API keys in the admin: made there (the secret is shown once), revoked there, limits and
allowed models edited there; usage per key, model and day read there, with its charts."""

from django.contrib import admin, messages
from django.template.loader import render_to_string
from django.urls import reverse

from access.charts import PLOTLY_JS, PLOTLY_STYLE_ID, bundled_style_ids
from access.models import ApiKey, DailyUsage
from access.selectors import usage_by_day, usage_by_model
from access.services import assign_new_secret, revoke_api_keys

NO_KEY = "No key"


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "requests_per_minute", "tokens_per_minute", "created_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    filter_horizontal = ("allowed_models",)
    fields = ("name", "requests_per_minute", "tokens_per_minute", "allowed_models", "prefix", "created_at",
              "revoked_at", "usage")
    readonly_fields = ("prefix", "created_at", "revoked_at", "usage")
    actions = ("revoke",)

    def save_model(self, request, obj, form, change):
        secret = None if change else assign_new_secret(api_key=obj)
        super().save_model(request, obj, form, change)
        if secret:
            messages.warning(request, f"The new key of {obj.name!r} is {secret} : copy it now, it is not shown again.")

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        revoked = revoke_api_keys(queryset=queryset)
        self.message_user(request, f"Revoked {revoked} key(s).")

    @admin.display(description="Usage")
    def usage(self, obj):
        """Totals per model over the days kept, and a link to the key's charts."""
        if obj.pk is None:
            return "-"
        charts = f"{reverse('admin:access_dailyusage_changelist')}?api_key__id__exact={obj.pk}"
        return render_to_string(
            "admin/access/apikey/usage.html", {"models": usage_by_model(api_key=obj), "charts_url": charts}
        )


class ReadOnlyAdminMixin:
    """Usage is recorded by the service, never edited by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class KeyFilter(admin.RelatedFieldListFilter):
    """The keys, and the requests without one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.empty_value_display = NO_KEY


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Usage per day, key and model, with charts per day of what the filters select."""

    list_display = ("day", "key", "model_id", "requests", "failed", "cancelled", "prompt_tokens",
                    "generated_tokens", "mean_duration_ms", "mean_time_to_first_token_ms", "last_used_at")
    list_filter = ("model_id", ("api_key", KeyFilter))
    date_hierarchy = "day"
    list_select_related = ("api_key",)

    @admin.display(description="API key", ordering="api_key__name", empty_value=NO_KEY)
    def key(self, obj):
        return obj.api_key

    @admin.display(description="mean duration (ms)")
    def mean_duration_ms(self, obj):
        return round(obj.duration_ms_sum / obj.finished) if obj.finished else None

    @admin.display(description="mean time to first token (ms)")
    def mean_time_to_first_token_ms(self, obj):
        return round(obj.time_to_first_token_ms_sum / obj.finished) if obj.finished else None

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:  # not a redirect or an error page
            context.update(
                usage_by_day=usage_by_day(queryset=context["cl"].queryset),
                plotly_js=PLOTLY_JS,
                plotly_style_id=PLOTLY_STYLE_ID,
                plotly_style_guards=bundled_style_ids(),
            )
        return response
