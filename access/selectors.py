"""Reads of API keys."""

import hashlib

from access.models import ApiKey

# Every secret this service issues starts with it: a presented key in this format is judged
# (valid, or refused), a key in any other format is not one of ours.
SECRET_PREFIX = "llm-"


def hash_secret(secret: str) -> str:
    # Keys are 256 random bits: a fast hash is enough (no dictionary to guess from), and
    # it lets a key be found by its hash in one indexed lookup.
    return hashlib.sha256(secret.encode()).hexdigest()


def active_key(*, secret: str) -> ApiKey | None:
    """The unrevoked key with this secret, if any."""
    return ApiKey.objects.filter(key_hash=hash_secret(secret), revoked_at__isnull=True).first()
