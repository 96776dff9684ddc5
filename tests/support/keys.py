"""API keys on a server that requires them (the keyed preset): made, sent, and the per-minute
windows to start early in."""

import time


def new_key(server, name: str, *options: str) -> str:
    return server.manage("create_api_key", name, *options).strip()


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


# What a limit test needs of one minute: 2.5 to 7 s when the suite ran alone, 20 s leaves room
# for a loaded machine.
SECONDS_A_LIMIT_TEST_NEEDS = 20


def start_of_a_fresh_minute():
    """Per-minute windows: a limit test must not see its minute end midway, so it waits for the next
    minute when fewer than SECONDS_A_LIMIT_TEST_NEEDS are left of this one (it waited whenever
    more than 30 s had gone: 7.5 s on average, 6 times per run)."""
    second = time.gmtime().tm_sec
    if 60 - second < SECONDS_A_LIMIT_TEST_NEEDS:
        time.sleep(61 - second)
