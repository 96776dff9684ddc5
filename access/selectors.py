"""Reads of API keys and of their usage."""

import hashlib

from django.db.models import Max, Min, Sum

from access.models import ApiKey, DailyUsage

# Every secret this service issues starts with it: a presented key in this format is judged
# (valid, or refused), a key in any other format is not one of ours.
SECRET_PREFIX = "llm-"


def hash_secret(secret: str) -> str:
    # Keys are 256 random bits: a fast hash is enough (no dictionary to guess from), and
    # it lets a key be found by its hash in one indexed lookup.
    return hashlib.sha256(secret.encode()).hexdigest()


def active_key(*, secret: str) -> ApiKey | None:
    """The unrevoked key with this secret, if any, with the ids of the models it may use: read
    here, where the caller already is in a thread, so that the request's model check
    (model_ids_of_key) then needs no query, nor a thread hop."""
    api_key = ApiKey.objects.filter(key_hash=hash_secret(secret), revoked_at__isnull=True).first()
    if api_key is not None:
        api_key.allowed_model_ids  # a cached property: read now, in this thread, and kept with the key
    return api_key


# --- Usage ---------------------------------------------------------------------------------

USAGE_SUMS = ("requests", "finished", "failed", "cancelled", "prompt_tokens", "generated_tokens",
              "duration_ms_sum", "time_to_first_token_ms_sum")
USAGE_MAXIMA = ("duration_ms_max", "time_to_first_token_ms_max")


def _mean(total: int, count: int) -> float | None:
    return round(total / count, 1) if count else None


def usage_by_day(*, queryset=None) -> list[dict]:
    """Usage rows (all, or those of `queryset`) summed per day, oldest first: the counts, the
    tokens, and the mean and maximum duration and time to first token of the finished
    generations, in milliseconds (None for a day without any)."""
    rows = (queryset if queryset is not None else DailyUsage.objects.all()).order_by()
    days = (
        rows.values("day")
        .annotate(**{field: Sum(field) for field in USAGE_SUMS}, **{field: Max(field) for field in USAGE_MAXIMA})
        .order_by("day")
    )
    return [
        {
            "day": row["day"].isoformat(),
            **{field: row[field] for field in USAGE_SUMS[:6]},
            "duration_ms_mean": _mean(row["duration_ms_sum"], row["finished"]),
            "duration_ms_max": row["duration_ms_max"] if row["finished"] else None,
            "time_to_first_token_ms_mean": _mean(row["time_to_first_token_ms_sum"], row["finished"]),
            "time_to_first_token_ms_max": row["time_to_first_token_ms_max"] if row["finished"] else None,
        }
        for row in days
    ]


def usage_by_model(*, api_key: ApiKey | None) -> list[dict]:
    """A key's (or, for None, the keyless requests') usage per model over the days kept, most used first."""
    rows = DailyUsage.objects.filter(api_key=api_key).order_by()
    return list(
        rows.values("model_id")
        .annotate(
            **{field: Sum(field) for field in USAGE_SUMS[:6]},
            first_day=Min("day"),
            last_used_at=Max("last_used_at"),
        )
        .order_by("-requests", "model_id")
    )


def model_ids_of_key(*, api_key: ApiKey | None) -> frozenset[str] | None:
    """The catalog ids a key is limited to; None for no key, or a key that may use every model."""
    if api_key is None:
        return None
    return api_key.allowed_model_ids or None
