"""Writes of API keys: issuing and revoking them, admitting requests under their
per-minute limits, and recording their usage.

Per-minute limits are counted in the database, in one row per key and minute
(RateWindow), so that every process and replica enforces the same limits. Admission is
one conditional UPDATE ("add one request if still under the limits"), atomic on SQLite
and PostgreSQL alike without locks. The database is already shared by all replicas, and
one small write per request is negligible next to a generation that lasts seconds, so
no Redis is needed for this.
"""

import math
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from access.models import ApiKey, KeyUsage, RateWindow
from access.selectors import SECRET_PREFIX, hash_secret
from catalog.models import ModelEntry
from common.errors import InvalidRequest, ModelNotAllowed, RateLimited


def assign_new_secret(*, api_key: ApiKey) -> str:
    """Give an unsaved key a fresh secret; returns it (only its hash is stored: show it once)."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    api_key.key_hash = hash_secret(secret)
    api_key.prefix = secret[: len(SECRET_PREFIX) + 6]
    return secret


@transaction.atomic
def create_api_key(
    *,
    name: str,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
    model_ids: tuple[str, ...] = (),
) -> tuple[ApiKey, str]:
    api_key = ApiKey(name=name, requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute)
    secret = assign_new_secret(api_key=api_key)
    api_key.save()
    if model_ids:
        entries = list(ModelEntry.objects.filter(model_id__in=model_ids))
        missing = set(model_ids) - {entry.model_id for entry in entries}
        if missing:
            raise ValueError(f"No catalog entry for {', '.join(sorted(missing))}")
        api_key.allowed_models.set(entries)
    return api_key, secret


def revoke_api_keys(*, queryset) -> int:
    return queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


def check_model_allowed(*, api_key: ApiKey, model_id: str) -> None:
    allowed = api_key.allowed_models.values_list("model_id", flat=True)
    if allowed.exists() and model_id not in allowed:
        raise ModelNotAllowed(f"This API key may not use model {model_id!r}.", field="model")


def _seconds_left(minute: datetime, now: datetime) -> int:
    return max(1, math.ceil((minute + timedelta(minutes=1) - now).total_seconds()))


def admit_request(*, api_key: ApiKey, prompt_tokens: int, now: datetime | None = None) -> datetime | None:
    """Count a request and its prompt in this minute's window, or raise RateLimited.

    Returns the window's minute, where the generated tokens are added when it ends; None
    for a key without limits (nothing to count).
    """
    rpm, tpm = api_key.requests_per_minute, api_key.tokens_per_minute
    if rpm is None and tpm is None:
        return None
    now = now or timezone.now()
    minute = now.replace(second=0, microsecond=0)
    if tpm is not None and prompt_tokens > tpm:
        raise InvalidRequest(
            f"The prompt is {prompt_tokens} tokens, over this API key's limit of {tpm} tokens per minute.",
        )
    window, created = RateWindow.objects.get_or_create(api_key=api_key, minute=minute)
    if created:
        RateWindow.objects.filter(api_key=api_key, minute__lt=minute).delete()
    under_limits = RateWindow.objects.filter(pk=window.pk)
    if rpm is not None:
        under_limits = under_limits.filter(requests__lt=rpm)
    if tpm is not None:
        under_limits = under_limits.filter(tokens__lte=tpm - prompt_tokens)
    if not under_limits.update(requests=F("requests") + 1, tokens=F("tokens") + prompt_tokens):
        window.refresh_from_db()
        which = (
            f"{rpm} requests per minute"
            if rpm is not None and window.requests >= rpm
            else f"{tpm} tokens per minute ({window.tokens} used)"
        )
        raise RateLimited(
            f"This API key is over its limit of {which}. Retry after the minute ends.",
            retry_after=_seconds_left(minute, now),
        )
    return minute


def record_usage(
    *, api_key: ApiKey, model_id: str, minute: datetime | None, prompt_tokens: int, generated_tokens: int
) -> None:
    """Add a finished (or cancelled) generation to the key's totals and to its rate window."""
    if minute is not None:
        RateWindow.objects.filter(api_key=api_key, minute=minute).update(tokens=F("tokens") + generated_tokens)
    usage, _ = KeyUsage.objects.get_or_create(api_key=api_key, model_id=model_id)
    KeyUsage.objects.filter(pk=usage.pk).update(
        requests=F("requests") + 1,
        prompt_tokens=F("prompt_tokens") + prompt_tokens,
        generated_tokens=F("generated_tokens") + generated_tokens,
        last_used_at=timezone.now(),
    )
