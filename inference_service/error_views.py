"""JSON answers for URLs that match no route, and for crashes outside the API views.

Django's own pages are HTML; API clients get the native error shape instead. The admin
keeps Django's pages.
"""

from django.http import JsonResponse
from django.views import defaults

from generation.api_errors import error_body


def not_found(request, exception=None):
    if request.path.startswith("/admin/"):
        return defaults.page_not_found(request, exception)
    return JsonResponse(error_body("not_found", f"No such endpoint: {request.path}."), status=404)


def server_error(request):
    if request.path.startswith("/admin/"):
        return defaults.server_error(request)
    return JsonResponse(error_body("internal_error", "Internal server error."), status=500)
