"""The page at `/`: what this server is, and where its API documentation, admin, health
and metrics are (the admin's "View site" link leads here). It names no model: the model
list may need an API key."""

from django.conf import settings
from django.shortcuts import render
from django.views.decorators.http import require_safe


@require_safe
def landing(request):
    return render(request, "landing.html", {"service_name": settings.SERVICE_NAME, "version": settings.SERVICE_VERSION})
