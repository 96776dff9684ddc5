"""Requests whose clients leave before their first token stop costing the engine anything.

mistral.rs 0.9.5 cannot interrupt a prefill, and only one prompt is prefilled at a time
(the prefill gate). Before the fix, every abandoned request was still submitted when its
turn at the gate came, and each long prompt was prefilled for nobody: six abandoned
prompts of about 2,500 tokens delayed the next request by six prefills (77 s on a busy
machine), while the in-flight gauge already read 0.
"""

import threading
import time

import httpx

from tests.support.metrics import metric


ABANDONED = 6


def long_prompt(seed: int) -> str:
    # About 2,500 tokens, different for each request.
    return " ".join(f"item {seed}-{index} is number {index * 7 + seed}." for index in range(165))


def abandon_after(url: str, prompt: str, seconds: float) -> None:
    try:
        with httpx.Client(timeout=httpx.Timeout(30, read=seconds)) as client:
            with client.stream("POST", f"{url}/api/generate/stream", json={"prompt": prompt, "max_tokens": 8}) as r:
                for _ in r.iter_bytes():
                    pass
    except httpx.ReadTimeout:
        pass  # gone: the connection is closed on leaving the block


def test_abandoned_prompts_are_not_prefilled_for_nobody(concurrent_server):
    url = concurrent_server.url
    started = time.monotonic()
    first = httpx.post(f"{url}/api/generate", json={"prompt": long_prompt(99), "max_tokens": 1}, timeout=300)
    one_prefill = time.monotonic() - started
    assert first.status_code == 200 and first.json()["prompt_tokens"] > 2000
    cancelled_before = metric(url, "llm_requests_total", model="google/gemma-3-270m", endpoint="generate_stream",
                              status="499")

    clients = [threading.Thread(target=abandon_after, args=(url, long_prompt(n), 1.0)) for n in range(ABANDONED)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    # The one prompt in prefill still holds its slot: the engine is working on it.
    assert metric(url, "llm_requests_in_flight") >= 1

    started = time.monotonic()
    short = httpx.post(f"{url}/api/generate", json={"prompt": "Hello", "max_tokens": 8}, timeout=300)
    waited = time.monotonic() - started
    print(f"one prefill {one_prefill:.1f} s; the next request after {ABANDONED} abandoned ones: {waited:.1f} s")
    assert short.status_code == 200
    # At most the prefill under way when the clients left, not one per abandoned prompt.
    assert waited < 2 * one_prefill + 1.0, (one_prefill, waited)

    deadline = time.monotonic() + 30
    while metric(url, "llm_requests_in_flight") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metric(url, "llm_requests_in_flight") == 0
    cancelled = metric(url, "llm_requests_total", model="google/gemma-3-270m", endpoint="generate_stream",
                       status="499")
    assert cancelled - cancelled_before == ABANDONED  # each one counted once, queued or not
