"""Usage on a real server with LLM_REQUIRE_API_KEY off: generations with and without a key,
finished and cancelled, land in the right rows per day, key and model; the admin's usage
list draws their charts in a real (headless) browser, under the Content-Security-Policy."""

import json
import time

import httpx
import pytest

from tests.support.chromium import log_in_to_the_admin
from tests.support.server import ADMIN_PASSWORD, ADMIN_USER, start_server, stop_server, superuser

GEMMA = "google/gemma-3-270m"
SMOLLM = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the chat default
PROMPT = {"prompt": "The capital of France is", "max_tokens": 3, "temperature": 0}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Of its own: the usage rows of its whole database are counted.
    server = start_server(tmp_path_factory.mktemp("usage-server"), setup=(superuser(ADMIN_USER),))
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def traffic(server):
    """A few generations: two anonymous ones and a chat on the chat default, one with a key,
    and an anonymous stream that its client leaves after its first token. Their answers."""
    key = server.manage("create_api_key", "usage-e2e").strip()
    with httpx.Client(base_url=server.url, timeout=120) as client:
        anonymous = [client.post("/api/generate", json=PROMPT).json() for _ in range(2)]
        chat = client.post("/api/chat", json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3})
        keyed = client.post("/api/generate", json=PROMPT, headers={"Authorization": f"Bearer {key}"}).json()
        with client.stream("POST", "/api/generate/stream", json={**PROMPT, "max_tokens": 400}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    break  # the first token: the client leaves
    assert chat.json()["model"] == SMOLLM
    return {"anonymous": anonymous, "chat": chat.json(), "keyed": keyed}


def usage_rows(server) -> dict:
    """{(key name or None, model): its usage} over the days kept (one day, but for a test run
    across midnight UTC), read from the database."""
    code = (
        "import json; from django.db.models import Max, Sum; from access.models import DailyUsage; "
        "sums = ['requests', 'finished', 'failed', 'cancelled', 'prompt_tokens', 'generated_tokens', "
        "'duration_ms_sum', 'time_to_first_token_ms_sum']; "
        "maxima = ['duration_ms_max', 'time_to_first_token_ms_max']; "
        "print(json.dumps(list(DailyUsage.objects.order_by().values('api_key__name', 'model_id').annotate("
        "**{f: Sum(f) for f in sums}, **{f: Max(f) for f in maxima}))))"
    )
    rows = json.loads(server.manage("shell", "-c", code).strip().splitlines()[-1])
    return {(row["api_key__name"], row["model_id"]): row for row in rows}


def wait_for_rows(server, check, timeout=30):
    """The cancelled generation is recorded in the background: poll until `check` holds."""
    deadline = time.monotonic() + timeout
    while True:
        rows = usage_rows(server)
        if check(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def test_generations_with_and_without_a_key_are_counted_per_day_key_and_model(server, traffic):
    rows = wait_for_rows(server, lambda rows: rows.get((None, GEMMA), {}).get("cancelled") == 1)
    assert set(rows) == {(None, GEMMA), (None, SMOLLM), ("usage-e2e", GEMMA)}
    anonymous = rows[(None, GEMMA)]
    finished = traffic["anonymous"]
    assert (anonymous["requests"], anonymous["finished"], anonymous["cancelled"], anonymous["failed"]) == (3, 2, 1, 0)
    # The cancelled stream's prompt and the tokens it got before its client left count too.
    assert anonymous["prompt_tokens"] == sum(body["prompt_tokens"] for body in finished) + finished[0]["prompt_tokens"]
    assert anonymous["generated_tokens"] >= sum(body["tokens_generated"] for body in finished) + 1
    # Latency of the two finished ones: a first token before the end, and a mean under the maximum.
    assert 0 < anonymous["time_to_first_token_ms_max"] <= anonymous["duration_ms_max"]
    assert anonymous["duration_ms_sum"] <= 2 * anonymous["duration_ms_max"]
    chat, keyed = rows[(None, SMOLLM)], rows[("usage-e2e", GEMMA)]
    assert (chat["requests"], chat["finished"], chat["prompt_tokens"], chat["generated_tokens"]) == (
        1, 1, traffic["chat"]["prompt_tokens"], traffic["chat"]["tokens_generated"])
    assert (keyed["requests"], keyed["prompt_tokens"], keyed["generated_tokens"]) == (
        1, traffic["keyed"]["prompt_tokens"], traffic["keyed"]["tokens_generated"])
    assert keyed["duration_ms_max"] > 0


def test_the_usage_charts_render_in_a_browser_under_the_content_security_policy(server, traffic, page):
    log_in_to_the_admin(page, server.url, ADMIN_USER, ADMIN_PASSWORD)
    page.goto(f"{server.url}/admin/access/dailyusage/")
    # Per day (one, but for a run across midnight UTC): a stack of bars (finished,
    # cancelled) in the requests chart, two bars (prompt, generated) in the tokens chart,
    # four points (mean and maximum of two times) in the latency chart.
    days = len(json.loads(page.evaluate("document.getElementById('usage-by-day').textContent")))
    bars = "document.querySelectorAll('#usage-requests-chart .bars .point path').length"
    assert page.wait_for(bars) >= 2
    assert page.evaluate("document.querySelectorAll('#usage-tokens-chart .bars .point path').length") == 2 * days
    assert page.evaluate("document.querySelectorAll('#usage-latency-chart .scatterlayer .point').length") == 4 * days
    # Bars were drawn with a height: plotly scaled them to the data.
    heights = page.evaluate(
        "[...document.querySelectorAll('#usage-tokens-chart .bars .point path')].map((bar) => bar.getBBox().height)"
    )
    assert all(height > 0 for height in heights), heights
    # Filtered to the keyless requests on one model: the charts follow the filter.
    page.goto(f"{server.url}/admin/access/dailyusage/?api_key__isnull=True&model_id={SMOLLM}")
    data = json.loads(page.evaluate("document.getElementById('usage-by-day').textContent"))
    assert [day["requests"] for day in data] == [1]
    page.wait_for("document.querySelectorAll('#usage-requests-chart .bars .point path').length")
    page.pump(0.5)  # violations are reported asynchronously
    assert page.violations == []
    assert page.csp_messages() == []
    assert page.exceptions == []
