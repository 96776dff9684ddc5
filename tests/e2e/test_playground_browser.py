"""The admin's playground in headless Chromium against a real server that requires API keys
(the keyed preset, shared): a staff member logs in, picks a model, and the answer streams
into the page with its numbers; a chat goes on for a second turn; a raw prompt completes;
Stop cancels. The page works under the Content-Security-Policy, from the admin session
alone, while callers without a key (or a session, or from another origin) are still
refused."""

import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.support.admin_forms import admin_session
from tests.support.chromium import Page, log_in_to_the_admin
from tests.support.server import ADMIN_PASSWORD, ADMIN_USER

CHAT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"  # disabled on this server: tried before it is enabled
RAW_MODEL = "google/gemma-3-270m"


@pytest.fixture(scope="module")
def server(keyed_server):
    """The keyed preset's server, with the chat model disabled while this module runs."""
    entry = f"from catalog.models import ModelEntry; entry = ModelEntry.objects.get(model_id={CHAT_MODEL!r}); "
    with keyed_server.catalog_changed(f"{entry}entry.enabled = False; entry.save()",
                                      f"{entry}entry.enabled = True; entry.save()"):
        yield keyed_server


def open_playground(page: Page, server, model: str | None = None) -> None:
    """Log into the admin and follow its index's link to the playground (a failing test's
    screenshot: the `page` fixture's, in test-artifacts/)."""
    log_in_to_the_admin(page, server.url, ADMIN_USER, ADMIN_PASSWORD)
    page.follow("document.querySelector('a[href=\"/admin/playground/\"]').click()")
    assert page.evaluate("location.pathname") == "/admin/playground/"
    if model:
        choose(page, model)


def choose(page: Page, model: str) -> None:
    page.evaluate(f"const s = document.getElementById('pg-model'); s.value = {model!r};"
                  "s.dispatchEvent(new Event('change'))")
    assert page.evaluate("document.getElementById('pg-model').value") == model


def fill(page: Page, **fields: str) -> None:
    for name, value in fields.items():
        page.evaluate(f"document.getElementById('pg-{name}').value = {value!r}")


def record_answer_growth(page: Page) -> None:
    """Note the answer's length at each change of the page, and whether the stats were in then."""
    page.evaluate(
        "window.__lengths = [];"
        "new MutationObserver(() => { const a = document.getElementById('pg-answer');"
        "  window.__lengths.push([a ? a.textContent.length : 0,"
        "    document.getElementById('pg-finish').textContent !== '–']); })"
        ".observe(document.querySelector('.playground'), {subtree: true, childList: true, characterData: true})"
    )


def send_and_wait(page: Page) -> dict:
    page.evaluate("document.getElementById('pg-send').click()")
    page.wait_for("document.getElementById('pg-status').textContent.startsWith('done')"
                  " || document.getElementById('pg-status').textContent.startsWith('error')", timeout=180)
    stats = page.evaluate(
        "Object.fromEntries(['pg-status', 'pg-ttft', 'pg-rate', 'pg-prompt-tokens', 'pg-generated-tokens',"
        " 'pg-finish', 'pg-answer'].map((id) => [id, document.getElementById(id).textContent]))"
    )
    assert stats["pg-status"].startswith("done"), stats
    return stats


def assert_stats(stats: dict) -> None:
    assert stats["pg-ttft"].endswith(" ms") and int(stats["pg-ttft"].removesuffix(" ms")) > 0
    assert float(stats["pg-rate"]) > 0
    assert int(stats["pg-prompt-tokens"]) > 0
    assert int(stats["pg-generated-tokens"]) > 1


def assert_no_violation(page: Page) -> None:
    page.pump(0.5)  # violations are reported asynchronously
    assert page.violations == []
    assert page.csp_messages() == []
    assert page.exceptions == []
    assert [line for line in page.console if "rror" in line] == []


def test_a_chat_streams_in_and_goes_on(server, page):
    open_playground(page, server, CHAT_MODEL)
    assert "disabled" in page.evaluate("document.getElementById('pg-model-note').textContent")
    # The sampling fields hold the entry's defaults.
    defaults = page.evaluate("JSON.parse(document.getElementById('playground-config').textContent)"
                             f".models.find((m) => m.id === {CHAT_MODEL!r}).defaults")
    assert page.evaluate("document.getElementById('pg-max_tokens').value") == str(defaults["max_tokens"])
    fill(page, max_tokens="48", temperature="0", message="Name a primary colour.",
         system="You are a helpful assistant. Answer in one sentence.")
    record_answer_growth(page)
    first = send_and_wait(page)
    growing = sorted({length for length, finished in page.evaluate("window.__lengths") if not finished})
    assert len([length for length in growing if length > 0]) >= 3, growing  # streamed, not in one piece
    assert first["pg-answer"].strip()
    assert_stats(first)
    # The next turn carries the conversation: a longer prompt, four turns shown.
    fill(page, message="Name another one.")
    second = send_and_wait(page)
    assert_stats(second)
    assert int(second["pg-prompt-tokens"]) > int(first["pg-prompt-tokens"]) + int(first["pg-generated-tokens"])
    roles = page.evaluate("[...document.querySelectorAll('#pg-transcript .pg-turn')].map((t) => t.classList[1])")
    assert roles == ["user", "assistant", "user", "assistant"]
    assert_no_violation(page)


def test_a_raw_prompt_completes_and_stop_cancels(server, page):
    open_playground(page, server, RAW_MODEL)
    page.evaluate("document.getElementById('pg-mode-generate').click()")
    assert page.evaluate("document.getElementById('pg-chat-fields').hidden") is True
    fill(page, prompt="The capital of France is", max_tokens="16", temperature="0")
    stats = send_and_wait(page)
    assert_stats(stats)
    assert stats["pg-generated-tokens"] == "16" and stats["pg-finish"] == "length"
    assert stats["pg-answer"].strip()
    # A long answer, stopped once it has begun.
    fill(page, prompt="1, 2, 3, 4, 5,", max_tokens="2000")
    page.evaluate("document.getElementById('pg-send').click()")
    page.wait_for("document.getElementById('pg-answer').textContent.length > 5", timeout=120)
    page.evaluate("document.getElementById('pg-stop-button').click()")
    page.wait_for("document.getElementById('pg-status').textContent === 'stopped'", timeout=30)
    stopped_at = page.evaluate("document.getElementById('pg-answer').textContent.length")
    page.pump(1)
    assert page.evaluate("document.getElementById('pg-answer').textContent.length") == stopped_at
    assert page.evaluate("document.getElementById('pg-send').disabled") is False
    assert_no_violation(page)


def test_the_model_page_opens_the_playground_with_it(server, page):
    open_playground(page, server)
    page.goto(f"{server.url}/admin/catalog/modelentry/")
    page.follow(f"[...document.querySelectorAll('#result_list tbody th a')]"
                f".find((a) => a.textContent.trim() === {RAW_MODEL!r}).click()")
    page.follow("document.querySelector('a.pg-try').click()")
    assert page.evaluate("document.getElementById('pg-model').value") == RAW_MODEL
    assert_no_violation(page)


def websocket_url(server, path: str) -> str:
    return server.url.replace("http", "ws", 1) + path


def assert_told_and_closed(socket) -> None:
    reply = json.loads(socket.recv(timeout=30))
    assert reply["type"] == "error" and reply["error"]["code"] == "unauthorized", reply
    with pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=30)
    assert closed.value.rcvd.code == 4401


def test_without_a_staff_session_or_a_key_everything_is_refused(server):
    origin = server.url
    # The playground's socket: no session, then a session but from another origin.
    with connect(websocket_url(server, "/ws/playground/"), origin=origin) as socket:
        assert_told_and_closed(socket)
    with admin_session(server.url, ADMIN_USER, ADMIN_PASSWORD) as admin:
        cookie = "; ".join(f"{name}={value}" for name, value in admin.cookies.items())
        with pytest.raises(InvalidStatus) as refused:
            connect(websocket_url(server, "/ws/playground/"), origin="http://evil.example",
                    additional_headers={"Cookie": cookie})
        assert refused.value.response.status_code == 403
        # The session opens the playground only: the APIs still want a key.
        assert admin.post("/api/chat", json={"messages": [{"role": "user", "content": "Hi"}]}).status_code == 401
        with connect(websocket_url(server, "/ws/generate/"), origin=origin,
                     additional_headers={"Cookie": cookie}) as socket:
            assert_told_and_closed(socket)
    # Anonymous callers of the APIs, as before.
    assert httpx.post(f"{server.url}/api/chat", json={"messages": [{"role": "user", "content": "Hi"}]}).status_code == 401
    with connect(websocket_url(server, "/ws/generate/")) as socket:
        assert_told_and_closed(socket)
    # With a key, the disabled entry is refused: only the playground may try it.
    key = server.manage("create_api_key", "playground-test").strip()
    response = httpx.post(f"{server.url}/api/chat", headers={"Authorization": f"Bearer {key}"}, timeout=60,
                          json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Hi"}]})
    assert response.status_code == 403, response.text
