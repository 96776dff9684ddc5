"""Input no part of the service can take is a clear 400, on every API, and the server keeps serving.

Each case was a 500, a stream that died without a byte, or a WebSocket request that got no
answer at all, before the service checked it (the review's findings, reproduced here
through the real server).
"""

import json

import httpx
import pytest
import websockets.sync.client

from tests.support.sse_client import stream_events

JSON = {"content-type": "application/json"}
LONE_SURROGATE = "\\ud800"  # as JSON text: valid JSON, not valid Unicode
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(scope="module")
def client(live_server):
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        yield client


def assert_bad_request(response: httpx.Response, *, field: str | None = None, openai: bool = False) -> dict:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["message"]
    assert "Traceback" not in error["message"] and "backtrace" not in error["message"]
    if field:
        assert error["param" if openai else "field"] == field
    return error


def assert_still_serving(client: httpx.Client) -> None:
    response, events, _ = stream_events(
        client, "/api/generate/stream", {"prompt": "Hello", "max_tokens": 2, "temperature": 0}, clock=lambda: 0
    )
    assert response.status_code == 200
    assert events[-1].event == "done"
    # A failing request answers at once, instead of hanging its client.
    assert client.post("/api/generate", json={"prompt": ""}, timeout=10).status_code == 400


@pytest.mark.parametrize(
    "url, body, field",
    [
        ("/api/generate/stream", {"prompt": "x", "top_k": 10**30, "max_tokens": 2}, "top_k"),
        ("/api/generate/stream", {"prompt": "x", "top_k": 2**64, "max_tokens": 2}, "top_k"),
        ("/api/generate", {"prompt": "x", "top_k": 2**64}, "top_k"),
        ("/api/generate", {"prompt": "x", "seed": 2**70}, "seed"),
        ("/api/chat/stream", {"messages": [{"role": "user", "content": "x"}], "top_k": 10**30}, "top_k"),
        ("/api/generate", {"prompt": "x", "repetition_penalty": 0}, "repetition_penalty"),
        ("/api/generate", {"prompt": "x", "repetition_penalty": False}, "repetition_penalty"),
        ("/api/generate", {"prompt": "x", "repetition_penalty": 1e-40}, "repetition_penalty"),
        ("/api/generate/stream", {"prompt": "x", "repetition_penalty": 0, "max_tokens": 2}, "repetition_penalty"),
        ("/api/generate", {"prompt": "x", "stop": ["y" * 1000]}, "stop[0]"),
    ],
)
def test_out_of_range_numbers_are_400_before_the_stream_starts(client, url, body, field):
    assert_bad_request(client.post(url, json=body), field=field)
    assert_still_serving(client)


@pytest.mark.parametrize(
    "url, body, field",
    [
        ("/v1/completions", {"model": "google/gemma-3-270m", "prompt": "x", "top_k": 10**30, "stream": True},
         "top_k"),
        ("/v1/chat/completions", {"model": "google/gemma-3-270m", "messages": [{"role": "user", "content": "x"}],
                                  "repetition_penalty": 0}, "repetition_penalty"),
    ],
)
def test_out_of_range_numbers_are_400_in_openai_shape(client, url, body, field):
    assert_bad_request(client.post(url, json=body), field=field, openai=True)


@pytest.mark.parametrize(
    "url, raw",
    [
        ("/api/generate", f'{{"prompt": "x{LONE_SURROGATE}"}}'),
        ("/api/generate/stream", f'{{"prompt": "x", "stop": ["{LONE_SURROGATE}"], "max_tokens": 2}}'),
        ("/api/chat", f'{{"messages": [{{"role": "user", "content": "{LONE_SURROGATE}"}}]}}'),
        ("/v1/completions", f'{{"model": "google/gemma-3-270m", "prompt": "{LONE_SURROGATE}"}}'),
        ("/v1/completions",
         f'{{"model": "google/gemma-3-270m", "prompt": "x", "stop": ["{LONE_SURROGATE}"], "stream": true}}'),
        ("/v1/chat/completions",
         f'{{"model": "google/gemma-3-270m", "messages": [{{"role": "user", "content": "{LONE_SURROGATE}"}}]}}'),
        ("/v1/chat/completions",
         f'{{"model": "google/gemma-3-270m", "messages": [{{"role": "user", "content": "x"}}], '
         f'"stop": "{LONE_SURROGATE}"}}'),
        ("/api/generate", f'{{"prompt": "x", "stop": {DEEP}}}'),
        ("/v1/completions", f'{{"model": "google/gemma-3-270m", "prompt": {DEEP}}}'),
        ("/api/generate", '{"prompt": "x", "temperature": NaN}'),
    ],
)
def test_json_that_the_engine_cannot_take_is_a_parse_error(client, url, raw):
    error = assert_bad_request(client.post(url, content=raw.encode(), headers=JSON))
    assert error["code"] == "parse_error"
    if url.startswith("/v1/"):
        assert error["type"] == "invalid_request_error"
    assert_still_serving(client)


@pytest.mark.parametrize(
    "url, body, field, openai",
    [
        ("/api/generate", {"prompt": "a\x00b"}, "prompt", False),
        ("/api/chat", {"messages": [{"role": "user", "content": "a\x00b"}]}, "messages[0].content", False),
        ("/v1/completions", {"model": "google/gemma-3-270m", "prompt": "a\x00b"}, "prompt", True),
        ("/v1/completions", {"model": "google/gemma-3-270m", "prompt": ["a\x00b"]}, "prompt", True),
        ("/v1/completions", {"model": "google/gemma-3-270m", "prompt": "a", "stop": "\x00"}, "stop", True),
        ("/v1/chat/completions", {"model": "google/gemma-3-270m", "messages": [{"role": "user", "content": "a\x00"}]},
         "messages[0].content", True),
        ("/v1/chat/completions", {"model": "google/gemma-3-270m", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "\x00"}]}]}, "messages[0].content", True),
    ],
)
def test_a_nul_character_is_refused_by_every_api(client, url, body, field, openai):
    """The native API refused NUL characters (DRF's rule) while the OpenAI API passed them on."""
    error = assert_bad_request(client.post(url, json={**body, "max_tokens": 1}), field=field, openai=openai)
    assert "Null characters" in error["message"]


@pytest.mark.parametrize("url, openai", [("/api/generate", False), ("/v1/completions", True)])
@pytest.mark.parametrize("body", [b"--x\r\nnot a multipart body", b'--x\r\nContent-Disposition: form-data; name="prompt"'
                                  b'\r\n\r\nHi\r\n--x--\r\n'])
def test_a_form_body_is_a_json_415(client, url, openai, body):
    """Twisted once parsed multipart bodies itself and answered the unparseable with a bare text 400."""
    response = client.post(url, content=body, headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 415, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type" and "multipart/form-data" in error["message"]
    if openai:
        assert error["type"] == "invalid_request_error"
    assert_still_serving(client)


@pytest.fixture
def socket(live_server):
    url = live_server.url.replace("http://", "ws://") + "/ws/generate/"
    with websockets.sync.client.connect(url, open_timeout=30) as socket:
        yield socket


def receive(socket) -> dict:
    return json.loads(socket.recv(timeout=60))


@pytest.mark.parametrize(
    "message, field",
    [
        ({"type": "generate", "id": "1", "prompt": "x", "top_k": 1e30}, "top_k"),
        ({"type": "generate", "id": "1", "prompt": "x", "repetition_penalty": 0}, "repetition_penalty"),
    ],
)
def test_websocket_out_of_range_numbers_get_an_error_message(socket, message, field):
    socket.send(json.dumps(message))
    reply = receive(socket)
    assert reply["type"] == "error" and reply["id"] == "1"
    assert reply["error"]["field"] == field
    socket.send(json.dumps({"type": "generate", "id": "2", "prompt": "Hello", "max_tokens": 2}))
    while (reply := receive(socket))["type"] == "delta":
        pass
    assert reply["type"] == "done" and reply["id"] == "2"


@pytest.mark.parametrize(
    "raw",
    [f'{{"type": "generate", "prompt": "{LONE_SURROGATE}"}}', f'{{"type": "generate", "prompt": {DEEP}}}'],
)
def test_websocket_json_that_the_engine_cannot_take_gets_an_error_message(socket, raw):
    socket.send(raw)
    reply = receive(socket)
    assert reply["type"] == "error" and reply["error"]["code"] == "invalid_request"
    socket.send(json.dumps({"type": "generate", "id": "2", "prompt": "Hello", "max_tokens": 2}))
    while (reply := receive(socket))["type"] == "delta":
        pass
    assert reply["type"] == "done"
