"""JSON answers for bad requests caught by Django itself (a Host not allowed), URLs that
match no route, and crashes outside the API views.

Django's own pages are HTML; API clients get the error shape of the API they called
instead. The admin keeps Django's pages.
"""

from django.core.exceptions import DisallowedHost
from django.views import defaults

from generation.api.errors import ApiError, render_for_path


def bad_request(request, exception=None):
    if request.path.startswith("/admin/"):
        return defaults.bad_request(request, exception)
    # Django's own 400s are suspicious requests, mostly a Host header not in ALLOWED_HOSTS.
    message = "Bad request: the Host header is not allowed." if isinstance(exception, DisallowedHost) else "Bad request."
    return render_for_path(request.path, ApiError(400, "bad_request", message))


def not_found(request, exception=None):
    if request.path.startswith("/admin/"):
        return defaults.page_not_found(request, exception)
    return render_for_path(request.path, ApiError(404, "not_found", f"No such endpoint: {request.path}."))


def server_error(request):
    if request.path.startswith("/admin/"):
        return defaults.server_error(request)
    return render_for_path(request.path, ApiError(500, "internal_error", "Internal server error."))
