"""One rule for presented API keys, on HTTP and WebSocket alike, where keys are optional
(the session's live server): a key in this service's format that is unknown or revoked is
refused with 401; no key, or a key in another format (OpenAI's SDKs always send one), is
anonymous. And browsers, which cannot set WebSocket headers, authenticate through the
`bearer.<key>` subprotocol.

Before: a revoked key was simply served anonymously, with no limits, where keys are optional.
"""

import json

import httpx
import pytest
import websockets.sync.client
from websockets.exceptions import ConnectionClosed

from tests.support.chromium import Page

PROMPT = {"prompt": "Hello", "max_tokens": 2, "temperature": 0}


@pytest.fixture(scope="module")
def keys(live_server):
    """A valid key, and one that was revoked."""
    valid = live_server.manage("create_api_key", "semantics-valid").strip().splitlines()[-1]
    revoked = live_server.manage("create_api_key", "semantics-revoked").strip().splitlines()[-1]
    live_server.manage(
        "shell", "-c",
        "from access.models import ApiKey; from access.services import revoke_api_keys; "
        "revoke_api_keys(queryset=ApiKey.objects.filter(name='semantics-revoked'))",
    )
    return {"valid": valid, "revoked": revoked}


def generate(live_server, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{live_server.url}/api/generate", json=PROMPT, headers=headers, timeout=60)


def test_a_revoked_or_unknown_key_is_refused_even_where_keys_are_optional(live_server, keys):
    assert generate(live_server, keys["valid"]).status_code == 200
    for key in [keys["revoked"], "llm-not-a-key-of-this-service"]:
        refused = generate(live_server, key)
        assert refused.status_code == 401, refused.text
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert refused.json()["error"]["code"] == "unauthorized"
    openai = httpx.post(f"{live_server.url}/v1/completions", json={"prompt": "Hi", "max_tokens": 1},
                        headers={"Authorization": f"Bearer {keys['revoked']}"}, timeout=60)
    assert openai.status_code == 401 and openai.json()["error"]["type"] == "authentication_error"


def test_no_key_or_a_key_of_another_format_is_anonymous_where_keys_are_optional(live_server):
    assert generate(live_server, None).status_code == 200
    assert generate(live_server, "unused").status_code == 200  # what OpenAI's SDK examples send
    assert generate(live_server, "sk-placeholder").status_code == 200


def ws_url(live_server) -> str:
    return live_server.url.replace("http://", "ws://") + "/ws/generate/"


def ws_generate(socket) -> dict:
    socket.send(json.dumps({"type": "generate", "id": "k", **PROMPT}))
    while (reply := json.loads(socket.recv(timeout=60)))["type"] == "delta":
        pass
    return reply


def test_websocket_keys_follow_the_same_rule(live_server, keys):
    with websockets.sync.client.connect(
        ws_url(live_server), additional_headers={"Authorization": f"Bearer {keys['revoked']}"}, open_timeout=30
    ) as socket:
        reply = json.loads(socket.recv(timeout=30))
        assert reply["type"] == "error" and reply["error"]["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=30)
        assert closed.value.rcvd.code == 4401


def test_websocket_key_in_the_subprotocol(live_server, keys):
    with websockets.sync.client.connect(
        ws_url(live_server), subprotocols=["llm.v1", f"bearer.{keys['valid']}"], open_timeout=30
    ) as socket:
        assert socket.subprotocol == "llm.v1"  # the key is never echoed
        assert ws_generate(socket)["type"] == "done"
    with websockets.sync.client.connect(
        ws_url(live_server), subprotocols=["llm.v1", f"bearer.{keys['revoked']}"], open_timeout=30
    ) as socket:
        assert json.loads(socket.recv(timeout=30))["error"]["code"] == "unauthorized"


def test_a_browser_page_authenticates_its_websocket(live_server, keys, tmp_path):
    """A page's script cannot set headers on a WebSocket: it offers the key as a subprotocol."""
    with Page(tmp_path) as page:
        page.goto(f"{live_server.url}/health/live")  # any page of the service's origin
        script = """
        new Promise((resolve) => {
          const socket = new WebSocket(%s, ["llm.v1", "bearer." + %s]);
          const received = [];
          socket.onopen = () => socket.send(JSON.stringify(
            {type: "generate", id: "page", prompt: "Hello", max_tokens: 2, temperature: 0}));
          socket.onmessage = (event) => {
            const message = JSON.parse(event.data);
            received.push(message.type);
            if (message.type !== "delta") { socket.close(); resolve({protocol: socket.protocol, received}); }
          };
          socket.onerror = () => resolve({error: true, received});
        })
        """ % (json.dumps(ws_url(live_server)), json.dumps(keys["valid"]))
        result = page.evaluate(script)
    assert result.get("protocol") == "llm.v1", result
    assert result["received"][-1] == "done" and "delta" in result["received"]
