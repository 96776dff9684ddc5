"""Slow clients and the connection cap at the protocol layer (inference_service.http_protocol),
on a real server with short deadlines (the protocol preset, shared): a request's headers and
body must arrive in time, a request done leaves the connection to its keep-alive, a stream or
a WebSocket runs as long as it needs, and connections past LLM_MAX_CONNECTIONS are refused.

A slow client here sends one byte now and then: each byte resets Twisted's own idle timeout,
so without the deadlines such a client is held for as long as it keeps sending.
"""

import json
import select
import socket
import time

import httpx
from websockets.sync.client import connect as websocket_connect

from inference_service.http_protocol import PROBE_HEADROOM
from tests.support.raw_http import assert_closed, connect, read_response, request_head
from tests.support.server import PRESETS

PROTOCOL = PRESETS["protocol"].settings
HEADER_TIMEOUT = float(PROTOCOL["LLM_HEADER_TIMEOUT_SECONDS"])
BODY_TIMEOUT = float(PROTOCOL["LLM_BODY_TIMEOUT_SECONDS"])
CAP = int(PROTOCOL["LLM_MAX_CONNECTIONS"])
TRICKLE_INTERVAL = 0.25
# Without the deadlines a trickling client is never answered: it gives up after this.
TRICKLE_FOR = 8.0


def trickle_until_answered(sock: socket.socket) -> float:
    """Send one byte every TRICKLE_INTERVAL until the server answers (or TRICKLE_FOR has
    passed); the seconds it took."""
    started = time.monotonic()
    for _ in range(int(TRICKLE_FOR / TRICKLE_INTERVAL)):
        readable, _, _ = select.select([sock], [], [], TRICKLE_INTERVAL)
        if readable:
            return time.monotonic() - started
        sock.sendall(b"x")
    raise AssertionError(f"the server still waited for the request after {TRICKLE_FOR} s")


def test_a_client_that_sends_half_its_headers_is_answered_408_after_the_header_timeout(protocol_server):
    with connect(protocol_server.url) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        elapsed = trickle_until_answered(sock)
        status, headers, body = read_response(sock)
        assert_closed(sock)
    assert status == 408
    assert HEADER_TIMEOUT - 0.3 < elapsed < HEADER_TIMEOUT + 2
    assert headers["connection"] == "close"
    assert json.loads(body) == {  # in the shape of the API that was called
        "error": {
            "message": f"The request's headers did not arrive within {HEADER_TIMEOUT:g} s.",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_timeout",
        }
    }


def test_a_client_that_sends_half_its_body_is_answered_408_after_the_body_timeout(protocol_server):
    with connect(protocol_server.url) as sock:
        sock.sendall(request_head("POST", "/api/generate", "Content-Type: application/json", "Content-Length: 100"))
        sock.sendall(b'{"prompt": ')
        elapsed = trickle_until_answered(sock)
        status, _, body = read_response(sock)
        assert_closed(sock)
    assert status == 408
    assert BODY_TIMEOUT - 0.3 < elapsed < BODY_TIMEOUT + 2
    assert json.loads(body) == {
        "error": {"code": "request_timeout", "message": f"The request's body did not arrive within {BODY_TIMEOUT:g} s."}
    }


def test_an_idle_keep_alive_connection_a_long_stream_and_a_websocket_are_not_cut(protocol_server):
    with httpx.Client(base_url=protocol_server.url, timeout=60) as client:
        assert client.get("/health/live").status_code == 200
        # Idle past both deadlines between two requests on one connection: no byte of a
        # request has arrived, so no deadline runs (Twisted's 60 s idle timeout does).
        with connect(protocol_server.url) as sock:
            sock.sendall(request_head("GET", "/health/live"))
            assert read_response(sock)[0] == 200
            time.sleep(HEADER_TIMEOUT + BODY_TIMEOUT)
            sock.sendall(request_head("GET", "/health/live"))
            assert read_response(sock)[0] == 200
        # A stream lasts as long as it generates: read past both deadlines, then leave.
        request = {"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "max_tokens": 2000, "temperature": 0}
        with client.stream("POST", "/api/generate/stream", json=request) as response:
            assert response.status_code == 200
            started = time.monotonic()
            for _ in response.iter_lines():
                if time.monotonic() - started > HEADER_TIMEOUT + BODY_TIMEOUT:
                    break
            else:
                raise AssertionError("the stream ended before it had lasted past the deadlines")
    with websocket_connect(protocol_server.url.replace("http", "ws", 1) + "/ws/generate/", open_timeout=30) as ws:
        time.sleep(HEADER_TIMEOUT + BODY_TIMEOUT)
        ws.send(json.dumps({"type": "generate", "id": "w", "prompt": "Hello", "max_tokens": 2}))
        for _ in range(10):  # two deltas at most, then the end
            reply = json.loads(ws.recv(timeout=60))
            if reply["type"] != "delta":
                break
        assert reply["type"] == "done"


def keep_alive_connection(url: str) -> socket.socket:
    """A connection that has been served a request and stays open, idle (no deadline runs)."""
    sock = connect(url)
    sock.sendall(request_head("GET", "/health/live"))
    assert read_response(sock)[0] == 200
    return sock


def test_connections_past_the_cap_get_health_probes_only_then_are_closed_at_once(protocol_server):
    held = [keep_alive_connection(protocol_server.url) for _ in range(CAP)]
    headroom = []
    try:
        with connect(protocol_server.url) as sock:
            sock.sendall(request_head("GET", "/api/models"))
            status, headers, body = read_response(sock)
            assert_closed(sock)
        assert status == 503
        assert headers["retry-after"] == "2"
        assert json.loads(body)["error"]["code"] == "too_many_connections"
        with connect(protocol_server.url) as sock:
            sock.sendall(request_head("GET", "/health/live"))
            status, headers, _ = read_response(sock)
            assert_closed(sock)  # a probe past the cap is served, then its connection closed
        assert (status, headers["connection"]) == (200, "close")
        time.sleep(0.5)  # the server sees those two connections closed
        headroom = [connect(protocol_server.url) for _ in range(PROBE_HEADROOM)]
        with connect(protocol_server.url) as sock:
            try:
                assert sock.recv(1) == b""  # closed as soon as accepted
            except ConnectionResetError:
                pass
        readable, _, _ = select.select(headroom, [], [], 0)
        assert readable == []  # accepted, and waiting for a request
    finally:
        for sock in held + headroom:
            sock.close()
