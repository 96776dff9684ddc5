"""The playground's WebSocket, /ws/playground/: the protocol of /ws/generate/ (see
generation.api.ws.consumers) for a staff member logged into the admin.

The admin session authenticates it, never an API key: the page shows and mints none.
Because a browser sends the session cookie with a WebSocket handshake from any site, the
route checks the handshake's Origin as Django's CSRF check does a form's: the page's own
origin (scheme, host and port; the host one of ALLOWED_HOSTS) or one of
CSRF_TRUSTED_ORIGINS; a handshake from any other origin, or with none, is refused (403).
Who may use it, and on which entries: workbench.playground. A disabled catalog entry may
be tried here, and only here; LLM_ALLOWED_MODELS still applies. Nothing is counted against
an API key. /ws/generate/ and the HTTP APIs are unchanged.
"""

import dataclasses
import io

from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.urls import path

from common.errors import Unauthorized
from generation.api.ws.consumers import GenerationConsumer
from generation.core.request import GenerationRequest
from workbench.playground import may_try_disabled, may_use_playground


def page_origin(scope) -> str | None:
    """The origin of this site's page that opens the socket, as Django sees a request's own:
    the scheme (X-Forwarded-Proto where SECURE_PROXY_SSL_HEADER trusts it) and the Host,
    which must be one of ALLOWED_HOSTS (None if not)."""
    # Daphne puts no scheme in a WebSocket's scope: the server's own, TLS with a certificate.
    scheme = {"ws": "http", "wss": "https"}[scope.get("scheme") or ("wss" if settings.LLM_TLS_CERT_FILE else "ws")]
    request = ASGIRequest({**scope, "method": "GET", "scheme": scheme}, io.BytesIO())
    try:
        return f"{request.scheme}://{request.get_host()}"
    except DisallowedHost:
        return None


def trusted_origins() -> list[str]:
    """CSRF_TRUSTED_ORIGINS in Channels' patterns: Django's https://*.example.com is its https://.example.com."""
    return [origin.replace("://*.", "://.", 1) for origin in settings.CSRF_TRUSTED_ORIGINS]


class SameOriginValidator:
    """Channels' OriginValidator (scheme, host and port compared; no Origin refused) against
    the page's own origin and CSRF_TRUSTED_ORIGINS."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        allowed = [origin for origin in (page_origin(scope), *trusted_origins()) if origin]
        return await OriginValidator(self.application, allowed)(scope, receive, send)


class PlaygroundConsumer(GenerationConsumer):
    endpoint_prefix = "playground"

    async def authenticate(self):
        user = self.scope.get("user")  # resolved by AuthMiddlewareStack before the consumer runs
        if user is None or not await sync_to_async(may_use_playground)(user):
            raise Unauthorized("The playground needs a staff member logged into the admin who may view the models.")
        self.include_disabled = await sync_to_async(may_try_disabled)(user)
        return None  # no API key: staff are not metered per key

    def generation_request(self, validated_data: dict, *, endpoint: str) -> GenerationRequest:
        request = super().generation_request(validated_data, endpoint=endpoint)
        return dataclasses.replace(request, include_disabled=self.include_disabled)


websocket_urlpatterns = [
    path("ws/playground/", SameOriginValidator(AuthMiddlewareStack(PlaygroundConsumer.as_asgi()))),
]
