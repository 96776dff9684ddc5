"""The admin's playground: a staff-only page to try a catalog entry (its chat template, its
sampling defaults) with streamed answers, before or after enabling it.

The page is plain HTML; its script (static/workbench/playground.js) talks to
/ws/playground/ (workbench.playground_consumer), which takes the admin session instead of
an API key. It lists every entry the environment allows, disabled ones too (marked):
trying an entry before enabling it is what the playground is for.

Who may use it follows the model entries' admin permissions: a staff member who may view
them may try the enabled ones (what the API serves anyway); trying a disabled one is part
of setting it up, so it takes the permission to change them. Staff who may not even view
the entries are refused the page and the socket.
"""

from django.contrib import admin
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from catalog.models import ModelEntry, ServiceSettings
from catalog.selectors import entries_within_environment, servable_model
from generation.api.summaries import SamplingDefaultsSerializer

WEBSOCKET_PATH = "/ws/playground/"


def _entry_permission(action: str) -> str:
    return f"{ModelEntry._meta.app_label}.{get_permission_codename(action, ModelEntry._meta)}"


def may_use_playground(user) -> bool:
    """Staff who may see the model entries (as the admin's ModelAdmin.has_view_permission)."""
    return user.is_active and user.is_staff and (
        user.has_perm(_entry_permission("view")) or user.has_perm(_entry_permission("change"))
    )


def may_try_disabled(user) -> bool:
    return user.has_perm(_entry_permission("change"))


def playground_models(*, include_disabled: bool) -> list[dict]:
    """The entries to try, enabled first, with the sampling defaults a request would get."""
    service = ServiceSettings.load()
    entries = [entry for entry in entries_within_environment() if entry.enabled or include_disabled]
    models = []
    for entry in sorted(entries, key=lambda entry: not entry.enabled):
        model = servable_model(entry, service)
        models.append({
            "id": entry.model_id,
            "name": entry.display_name,
            "enabled": entry.enabled,
            "chat": ModelEntry.Capability.CHAT in model.capabilities,
            "generate": ModelEntry.Capability.GENERATE in model.capabilities,
            "defaults": SamplingDefaultsSerializer(model.defaults).data,
            "max_tokens_limit": model.max_tokens_limit,
        })
    return models


def playground_view(request):
    """The page; wrapped in `admin.site.admin_view` (workbench.urls): staff only, else the login."""
    if not may_use_playground(request.user):
        raise PermissionDenied
    config = {
        "models": playground_models(include_disabled=may_try_disabled(request.user)),
        "selected": request.GET.get("model", ""),
        "websocket_path": WEBSOCKET_PATH,
    }
    context = {**admin.site.each_context(request), "title": "Playground", "playground": config}
    return TemplateResponse(request, "workbench/playground.html", context)
