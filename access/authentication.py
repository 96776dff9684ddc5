"""Bearer API keys: `Authorization: Bearer <key>`.

`authenticate_bearer` is the one check, used by DRF (every API view, through
REST_FRAMEWORK's DEFAULT_AUTHENTICATION_CLASSES) and by the WebSocket consumer.
"""

from django.conf import settings
from rest_framework.authentication import BaseAuthentication

from access.models import ApiKey
from access.selectors import active_key
from generation.errors import Unauthorized

WWW_AUTHENTICATE = 'Bearer realm="api"'


def authenticate_bearer(authorization: str | None) -> ApiKey | None:
    """The key an Authorization header carries; None when there is none and none is required.

    Raises Unauthorized for a missing key where one is required, a header that is not
    `Bearer <key>`, and a key that is unknown or revoked (even where keys are optional:
    a wrong key is a mistake worth telling).
    """
    if not authorization:
        if settings.LLM_REQUIRE_API_KEY:
            raise Unauthorized("This service needs an API key: send `Authorization: Bearer <key>`.")
        return None
    scheme, _, secret = authorization.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized("The Authorization header must be `Bearer <key>`.")
    api_key = active_key(secret=secret)
    if api_key is None:
        raise Unauthorized("The API key is not valid, or it was revoked.")
    return api_key


class BearerKeyAuthentication(BaseAuthentication):
    """DRF's side: `request.auth` is the ApiKey (or None); there are no users."""

    def authenticate(self, request):
        api_key = authenticate_bearer(request.META.get("HTTP_AUTHORIZATION"))
        return None if api_key is None else (None, api_key)

    def authenticate_header(self, request):
        return WWW_AUTHENTICATE
