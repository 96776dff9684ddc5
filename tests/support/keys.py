"""API keys on a server that requires them (the keyed preset): made, sent, and the per-minute
windows to start early in."""

import time


def new_key(server, name: str, *options: str) -> str:
    return server.manage("create_api_key", name, *options).strip()


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def start_of_a_fresh_minute():
    """Per-minute windows: run limit tests early in a minute, so that it does not end midway."""
    second = time.gmtime().tm_sec
    if second > 30:
        time.sleep(61 - second)
