from django.contrib import admin

from catalog.models import ServiceSettings


@admin.register(ServiceSettings)
class ServiceSettingsAdmin(admin.ModelAdmin):
    list_display = (
        "__str__", "default_model", "default_chat_model", "max_tokens_limit", "default_max_tokens",
        "default_temperature",
    )

    def has_add_permission(self, request):
        return not ServiceSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False
