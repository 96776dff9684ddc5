"""The admin's playground: a staff-only page to try a catalog entry (its chat template, its
sampling defaults) with streamed answers, before or after enabling it.

The page is plain HTML; its script (static/workbench/playground.js) talks to
/ws/playground/ (workbench.playground_consumer), which takes the admin session instead of
an API key. It lists every entry the environment allows, disabled ones too (marked):
trying an entry before enabling it is what the playground is for.
"""

from django.contrib import admin
from django.template.response import TemplateResponse

from catalog.models import ModelEntry, ServiceSettings
from catalog.selectors import entries_within_environment, servable_model
from generation.api.native.serializers import SamplingDefaultsSerializer

WEBSOCKET_PATH = "/ws/playground/"


def playground_models() -> list[dict]:
    """The entries to try, enabled first, with the sampling defaults a request would get."""
    service = ServiceSettings.load()
    entries = sorted(entries_within_environment(), key=lambda entry: not entry.enabled)
    models = []
    for entry in entries:
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
    config = {
        "models": playground_models(),
        "selected": request.GET.get("model", ""),
        "websocket_path": WEBSOCKET_PATH,
    }
    context = {**admin.site.each_context(request), "title": "Playground", "playground": config}
    return TemplateResponse(request, "workbench/playground.html", context)
