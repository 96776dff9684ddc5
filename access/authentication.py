"""Bearer API keys: `Authorization: Bearer <key>`.

`authenticate_bearer` is the one check, used by DRF (every API view, through
REST_FRAMEWORK's DEFAULT_AUTHENTICATION_CLASSES) and by the WebSocket consumer.
"""

from django.conf import settings
from rest_framework.authentication import BaseAuthentication

from access.models import ApiKey
from access.selectors import SECRET_PREFIX, active_key
from common.errors import Unauthorized

WWW_AUTHENTICATE = 'Bearer realm="api"'


def authenticate_bearer(authorization: str | None) -> ApiKey | None:
    """The key an Authorization header carries, or None for an anonymous caller.

    One rule in every mode: a key in this service's format (`llm-...`) that is unknown or
    revoked raises Unauthorized, so that revoking a key stops its holder everywhere.
    Where keys are required, a missing header or one that is not `Bearer <key>` raises
    Unauthorized too. Where they are optional, a caller without a key, or with a key in
    another format, is anonymous: OpenAI's SDKs always send some key (`api_key="unused"`),
    which must not lock them out of an open service.
    """
    scheme, _, secret = (authorization or "").strip().partition(" ")
    secret = secret.strip()
    api_key = active_key(secret=secret) if scheme.lower() == "bearer" and secret else None
    if api_key is not None:
        return api_key
    if scheme.lower() == "bearer" and secret.startswith(SECRET_PREFIX):
        raise Unauthorized("The API key is not valid, or it was revoked.")
    if not settings.LLM_REQUIRE_API_KEY:
        return None
    if not authorization:
        raise Unauthorized("This service needs an API key: send `Authorization: Bearer <key>`.")
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized("The Authorization header must be `Bearer <key>`.")
    raise Unauthorized("The API key is not valid, or it was revoked.")


class BearerKeyAuthentication(BaseAuthentication):
    """DRF's side: `request.auth` is the ApiKey (or None); there are no users."""

    def authenticate(self, request):
        api_key = authenticate_bearer(request.META.get("HTTP_AUTHORIZATION"))
        return None if api_key is None else (None, api_key)

    def authenticate_header(self, request):
        return WWW_AUTHENTICATE
