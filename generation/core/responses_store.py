"""The stored responses of POST /v1/responses: written when one ends, read and deleted by id.

A response is seen only by the API key that made it (requests without a key see those made
without one), and only for LLM_RESPONSES_RETENTION_DAYS days: older ones are pruned at each
write, and never answered meanwhile.
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from common.errors import ServiceError
from generation.models import StoredResponse


class ResponseNotFound(ServiceError):
    status = 404
    code = "not_found"

    def __init__(self, response_id: str, *, field: str | None = None):
        super().__init__(f"No response with id {response_id!r} (or it was deleted, or has expired).", field=field)


def _oldest_kept():
    return timezone.now() - timedelta(days=settings.LLM_RESPONSES_RETENTION_DAYS)


def store_response(*, response_id: str, api_key, body: dict, conversation: list[dict]) -> None:
    """Keep a response; those past the retention go at the same time."""
    StoredResponse.objects.filter(created_at__lt=_oldest_kept()).delete()
    StoredResponse.objects.create(
        response_id=response_id, api_key=api_key, created_at=timezone.now(), body=body, conversation=conversation
    )


def stored_response(*, response_id: str, api_key, field: str | None = None) -> StoredResponse:
    """The response of this id that `api_key` made (None: one made without a key); else ResponseNotFound."""
    found = StoredResponse.objects.filter(response_id=response_id, api_key=api_key, created_at__gte=_oldest_kept())
    response = found.first()
    if response is None:
        raise ResponseNotFound(response_id, field=field)
    return response


def delete_response(*, response_id: str, api_key) -> None:
    deleted, _ = StoredResponse.objects.filter(
        response_id=response_id, api_key=api_key, created_at__gte=_oldest_kept()
    ).delete()
    if not deleted:
        raise ResponseNotFound(response_id)
