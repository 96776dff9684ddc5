"""The playground's WebSocket, /ws/playground/: the protocol of /ws/generate/ (see
generation.api.ws.consumers) for a staff member logged into the admin.

The admin session authenticates it, never an API key: the page shows and mints none.
Because a browser sends the session cookie with a WebSocket handshake from any site, the
route checks the handshake's Origin against ALLOWED_HOSTS (the CSRF check of a WebSocket).
A disabled catalog entry may be tried here, and only here; LLM_ALLOWED_MODELS still applies.
Nothing is counted against an API key. /ws/generate/ and the HTTP APIs are unchanged.
"""

import dataclasses

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from common.errors import Unauthorized
from generation.api.ws.consumers import GenerationConsumer
from generation.service import GenerationRequest


class PlaygroundConsumer(GenerationConsumer):
    endpoint_prefix = "playground"

    async def authenticate(self):
        user = self.scope.get("user")  # resolved by AuthMiddlewareStack before the consumer runs
        if user is None or not (user.is_active and user.is_staff):
            raise Unauthorized("The playground needs a staff member logged into the admin.")
        return None  # no API key: staff are not metered per key

    def generation_request(self, validated_data: dict, *, endpoint: str) -> GenerationRequest:
        request = super().generation_request(validated_data, endpoint=endpoint)
        return dataclasses.replace(request, include_disabled=True)


websocket_urlpatterns = [
    path("ws/playground/", AllowedHostsOriginValidator(AuthMiddlewareStack(PlaygroundConsumer.as_asgi()))),
]
