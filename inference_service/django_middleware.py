"""Django's, django-prometheus's and django-csp's middleware, with their hooks run on the event loop
(see inference_service.middleware for why).

The settings name Django's own classes, which `check --deploy` looks for by name; the
ASGI application swaps in these forms (`event_loop_forms`) before it builds its handler.
"""

from asgiref.sync import sync_to_async
from csp import middleware as csp_middleware
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.middleware import clickjacking, common, csrf, security
from django_prometheus import middleware as prometheus_middleware

from inference_service.middleware import EventLoopHooks


class PrometheusBeforeMiddleware(EventLoopHooks, prometheus_middleware.PrometheusBeforeMiddleware):
    pass


class PrometheusAfterMiddleware(EventLoopHooks, prometheus_middleware.PrometheusAfterMiddleware):
    pass


class SecurityMiddleware(EventLoopHooks, security.SecurityMiddleware):
    pass


class CommonMiddleware(EventLoopHooks, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(EventLoopHooks, csrf.CsrfViewMiddleware):
    # The CSRF secret lives in a cookie (CSRF_USE_SESSIONS is off): no database read.
    pass


class AuthenticationMiddleware(EventLoopHooks, auth_middleware.AuthenticationMiddleware):
    # request.user is lazy: the user is read from the database only where a view uses it.
    pass


class XFrameOptionsMiddleware(EventLoopHooks, clickjacking.XFrameOptionsMiddleware):
    pass


class CSPMiddleware(EventLoopHooks, csp_middleware.CSPMiddleware):
    # django-csp's: builds the header from the settings (and a nonce, when a page asks for one).
    pass


class SessionMiddleware(EventLoopHooks, sessions_middleware.SessionMiddleware):
    async def process_response_async(self, request, response):
        session = getattr(request, "session", None)
        if session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST):
            return await sync_to_async(self.process_response)(request, response)  # saves the session
        return self.process_response(request, response)


class MessageMiddleware(EventLoopHooks, messages_middleware.MessageMiddleware):
    async def process_response_async(self, request, response):
        storage = getattr(request, "_messages", None)
        if storage is not None and (storage.used or storage.added_new):
            return await sync_to_async(self.process_response)(request, response)  # may write the session
        return self.process_response(request, response)


# Django's dotted path of each class -> the dotted path of its event-loop form
_FORMS = {
    f"{form.__bases__[1].__module__}.{form.__bases__[1].__name__}": f"{__name__}.{form.__name__}"
    for form in (
        PrometheusBeforeMiddleware,
        PrometheusAfterMiddleware,
        SecurityMiddleware,
        CommonMiddleware,
        CsrfViewMiddleware,
        AuthenticationMiddleware,
        XFrameOptionsMiddleware,
        CSPMiddleware,
        SessionMiddleware,
        MessageMiddleware,
    )
}


def event_loop_forms(middleware: list[str]) -> list[str]:
    """A MIDDLEWARE list with Django's classes replaced by their event-loop forms."""
    return [_FORMS.get(name, name) for name in middleware]
