"""API keys in the admin: made there (the secret is shown once), revoked there, limits and
allowed models edited there, usage per model read there."""

from django.contrib import admin, messages

from access.models import ApiKey, KeyUsage
from access.services import assign_new_secret, revoke_api_keys

USAGE_FIELDS = ("model_id", "requests", "prompt_tokens", "generated_tokens", "last_used_at")


class ReadOnlyAdminMixin:
    """Usage is recorded by the service, never edited by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class KeyUsageInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = KeyUsage
    fields = readonly_fields = USAGE_FIELDS
    extra = 0
    can_delete = False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "requests_per_minute", "tokens_per_minute", "created_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    filter_horizontal = ("allowed_models",)
    fields = ("name", "requests_per_minute", "tokens_per_minute", "allowed_models", "prefix", "created_at",
              "revoked_at")
    readonly_fields = ("prefix", "created_at", "revoked_at")
    inlines = (KeyUsageInline,)
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


@admin.register(KeyUsage)
class KeyUsageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("api_key", *USAGE_FIELDS)
    list_filter = ("model_id", "api_key")
