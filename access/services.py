"""Writes of API keys and usage: issuing and revoking keys, admitting requests under their
per-minute limits, and recording the usage of every generation, with a key or without.

Per-minute limits are counted in the database, in one row per key and minute
(RateWindow), so that every process and replica enforces the same limits. Admission is
one conditional UPDATE ("add one request if still under the limits"), atomic on SQLite
and PostgreSQL alike without locks. The database is already shared by all replicas, and
one small write per request is negligible next to a generation that lasts seconds, so
no Redis is needed for this. Tokens not known at admission (a generation's output, a
text's token count) are reserved then and settled when the request ends, so that requests
running at once cannot take a key over its tokens per minute.
"""

import math
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from access.models import ApiKey, DailyUsage, RateWindow
from access.selectors import SECRET_PREFIX, hash_secret, model_ids_of_key
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
    """Raises ModelNotAllowed unless the key may use the model; no query for a key of
    `active_key` (the request's), so that async callers call it as it is."""
    allowed = model_ids_of_key(api_key=api_key)
    if allowed is not None and model_id not in allowed:
        raise ModelNotAllowed(f"This API key may not use model {model_id!r}.", field="model")


def _seconds_left(minute: datetime, now: datetime) -> int:
    return max(1, math.ceil((minute + timedelta(minutes=1) - now).total_seconds()))


@dataclass(frozen=True)
class Admission:
    """A request counted in its key's window of `minute`, with `reserved_tokens` held there
    until it ends: the tokens its work may still use, which `settle_tokens` replaces with
    those it really used."""

    api_key: ApiKey
    minute: datetime
    reserved_tokens: int


def admit_request(
    *, api_key: ApiKey, prompt_tokens: int, max_tokens: int = 0, now: datetime | None = None
) -> Admission | None:
    """Count a generation in this minute's window, or raise RateLimited: one request, its
    prompt, and its `max_tokens` reserved until it ends, so that generations running at once
    cannot take a key over its tokens per minute. None for a key without limits (nothing to count).
    """
    tpm = api_key.tokens_per_minute
    if tpm is not None and prompt_tokens > tpm:
        raise InvalidRequest(
            f"The prompt is {prompt_tokens} tokens, over this API key's limit of {tpm} tokens per minute.",
        )
    if tpm is not None and prompt_tokens + max_tokens > tpm:
        raise InvalidRequest(
            f"The prompt ({prompt_tokens} tokens) and max_tokens ({max_tokens}) come to {prompt_tokens + max_tokens} "
            f"tokens, over this API key's limit of {tpm} tokens per minute: lower max_tokens.",
            field="max_tokens",
        )
    return _count_in_window(api_key=api_key, tokens=prompt_tokens + max_tokens, reserved=max_tokens, now=now)


def admit_tokenizer_request(*, api_key: ApiKey, estimate: int, now: datetime | None = None) -> Admission | None:
    """Count a tokenize or detokenize request in this minute's window, or raise RateLimited:
    one request, and `estimate` tokens of work (at most the key's limit) reserved until its
    real count is known (`settle_tokens`)."""
    tpm = api_key.tokens_per_minute
    reserved = estimate if tpm is None else min(estimate, tpm)
    return _count_in_window(api_key=api_key, tokens=reserved, reserved=reserved, now=now)


def _count_in_window(*, api_key: ApiKey, tokens: int, reserved: int, now: datetime | None) -> Admission | None:
    """Add one request and `tokens` to this minute's window if both stay within the key's limits."""
    rpm, tpm = api_key.requests_per_minute, api_key.tokens_per_minute
    if rpm is None and tpm is None:
        return None
    now = now or timezone.now()
    minute = now.replace(second=0, microsecond=0)
    window, created = RateWindow.objects.get_or_create(api_key=api_key, minute=minute)
    if created:
        RateWindow.objects.filter(api_key=api_key, minute__lt=minute).delete()
    under_limits = RateWindow.objects.filter(pk=window.pk)
    if rpm is not None:
        under_limits = under_limits.filter(requests__lt=rpm)
    if tpm is not None:
        under_limits = under_limits.filter(tokens__lte=tpm - tokens)
    if not under_limits.update(requests=F("requests") + 1, tokens=F("tokens") + tokens):
        window.refresh_from_db()
        raise _over_limit(api_key, window, now)
    return Admission(api_key=api_key, minute=minute, reserved_tokens=reserved)


def check_window_open(*, api_key: ApiKey, now: datetime | None = None) -> None:
    """Raise RateLimited if the key's window of this minute is already full (its requests, or its
    tokens), counting nothing: checked before a generation reaches its engine, so that a key over
    its limits costs no prefill. `admit_request` counts the request once its prompt is counted."""
    if not api_key.has_rate_limits:
        return
    rpm, tpm = api_key.requests_per_minute, api_key.tokens_per_minute
    now = now or timezone.now()
    window = RateWindow.objects.filter(api_key=api_key, minute=now.replace(second=0, microsecond=0)).first()
    if window is not None and (
        (rpm is not None and window.requests >= rpm) or (tpm is not None and window.tokens >= tpm)
    ):
        raise _over_limit(api_key, window, now)


def _over_limit(api_key: ApiKey, window: RateWindow, now: datetime) -> RateLimited:
    rpm, tpm = api_key.requests_per_minute, api_key.tokens_per_minute
    which = (
        f"{rpm} requests per minute"
        if rpm is not None and window.requests >= rpm
        else f"{tpm} tokens per minute ({window.tokens} used)"
    )
    return RateLimited(
        f"This API key is over its limit of {which}. Retry after the minute ends.",
        retry_after=_seconds_left(window.minute, now),
    )


def settle_tokens(*, admission: Admission, used_tokens: int) -> None:
    """Replace a request's reserved tokens in its window with those it used (the window of
    the minute it was admitted in; nothing if that window is gone)."""
    RateWindow.objects.filter(api_key=admission.api_key, minute=admission.minute).update(
        tokens=F("tokens") + (used_tokens - admission.reserved_tokens)
    )


@dataclass(frozen=True)
class GenerationUsage:
    """What one generation used, as it ended: `outcome` is "finished", "failed" or "cancelled".

    Its times are in seconds from the request reaching the generation core; they are
    counted in the latency of finished generations only (a cancelled one's duration is
    its client's choice). A finished generation without a first token (none generated)
    counts its whole duration as its time to first token.
    """

    model_id: str
    prompt_tokens: int
    generated_tokens: int
    outcome: str = "finished"
    time_to_first_token: float | None = None
    duration: float | None = None


OUTCOMES = ("finished", "failed", "cancelled")


def record_usage(
    *, api_key: ApiKey | None, usage: GenerationUsage, admission: Admission | None = None, now: datetime | None = None
) -> None:
    """Add a generation to its day's usage row (and settle its admission's reserved tokens
    with those it generated).

    One UPDATE in the usual case; the first generation of a day, key and model inserts its
    row, and then deletes the rows past the retention (LLM_USAGE_RETENTION_DAYS).
    """
    if usage.outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {usage.outcome!r}")
    now = now or timezone.now()
    if admission is not None:
        settle_tokens(admission=admission, used_tokens=usage.generated_tokens)
    day = now.astimezone(dt_timezone.utc).date()
    row = DailyUsage.objects.filter(day=day, api_key=api_key, model_id=usage.model_id)
    additions = _additions(usage)
    if _add_to(row, additions, now):
        return
    try:
        with transaction.atomic():
            DailyUsage.objects.create(
                day=day, api_key=api_key, model_id=usage.model_id, last_used_at=now,
                **additions["sums"], **additions["maxima"],
            )
    except IntegrityError:  # another process or thread made the row first
        _add_to(row, additions, now)
        return
    delete_expired_usage(today=day)


def _add_to(rows, additions: dict[str, dict[str, int]], now: datetime) -> int:
    return rows.update(
        **{field: F(field) + value for field, value in additions["sums"].items()},
        **{field: Greatest(F(field), value) for field, value in additions["maxima"].items()},
        last_used_at=now,
    )


def _additions(usage: GenerationUsage) -> dict[str, dict[str, int]]:
    sums = {
        "requests": 1,
        usage.outcome: 1,
        "prompt_tokens": usage.prompt_tokens,
        "generated_tokens": usage.generated_tokens,
    }
    maxima = {}
    if usage.outcome == "finished" and usage.duration is not None:
        duration_ms = round(usage.duration * 1000)
        first_token = usage.time_to_first_token if usage.time_to_first_token is not None else usage.duration
        first_token_ms = round(first_token * 1000)
        sums.update(duration_ms_sum=duration_ms, time_to_first_token_ms_sum=first_token_ms)
        maxima.update(duration_ms_max=duration_ms, time_to_first_token_ms_max=first_token_ms)
    return {"sums": sums, "maxima": maxima}


def delete_expired_usage(*, today: date | None = None, retention_days: int | None = None) -> int:
    """Delete the usage rows of days more than `retention_days` (default: the setting) before
    `today` (UTC); 0 keeps them all. Returns how many rows were deleted."""
    retention_days = settings.LLM_USAGE_RETENTION_DAYS if retention_days is None else retention_days
    if not retention_days:
        return 0
    today = today or timezone.now().astimezone(dt_timezone.utc).date()
    deleted, _ = DailyUsage.objects.filter(day__lt=today - timedelta(days=retention_days)).delete()
    return deleted
