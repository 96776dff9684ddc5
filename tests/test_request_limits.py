"""The request body limit at the protocol layer (inference_service.http_protocol), and the
JSON answers for a Host that is not allowed and for unknown URLs, on a real server.

Raw sockets where an HTTP client would hide what is tested: that the 413 comes before the
body was sent, and how a chunked body is received.
"""

import json
import select
import socket
import ssl
import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.server import start_server, stop_server
from tests.test_cors_tls import start_tls_server

LIMIT = 4096
ANNOUNCED = 300_000_000
# Without the limit at the protocol layer, these tests would wait for a body that never comes.
SOCKET_TIMEOUT = 10


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("limits"), LLM_MAX_REQUEST_BYTES=str(LIMIT))
    yield server
    stop_server(server)


def connect(url: str, context: ssl.SSLContext | None = None) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=SOCKET_TIMEOUT)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname=parts.hostname)
    return sock


def request_head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode("ascii")


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """Status, headers (lower-case names) and body of one response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            raise AssertionError(f"the connection closed before a whole response: {data!r}")
        data += piece
    head, body = data.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return int(status_line.split(" ")[1]), headers, body[:length]


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n"


def assert_closed(sock: socket.socket) -> None:
    """The server ends the connection after the refusal (no reset: what we sent is drained)."""
    assert sock.recv(65536) == b""


def refused_announced_body(url: str, path: str, context=None) -> tuple[int, dict, dict, float]:
    with connect(url, context) as sock:
        started = time.monotonic()
        sock.sendall(request_head("POST", path, "Content-Type: application/json", f"Content-Length: {ANNOUNCED}"))
        status, headers, body = read_response(sock)
        elapsed = time.monotonic() - started
        assert_closed(sock)
    return status, headers, json.loads(body), elapsed


def test_an_announced_body_over_the_limit_is_refused_before_it_is_sent(server):
    status, headers, body, elapsed = refused_announced_body(server.url, "/api/generate")
    assert status == 413
    assert elapsed < 3
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert body == {
        "error": {
            "code": "request_too_large",
            "message": f"The request body is {ANNOUNCED} bytes; the limit is {LIMIT}.",
        }
    }


def test_the_refusal_is_in_openai_shape_under_v1(server):
    status, headers, body, elapsed = refused_announced_body(server.url, "/v1/completions")
    assert status == 413
    assert elapsed < 3
    assert headers["content-type"] == "application/json"
    assert body == {
        "error": {
            "message": f"The request body is {ANNOUNCED} bytes; the limit is {LIMIT}.",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_too_large",
        }
    }


def test_a_client_waiting_for_100_continue_gets_the_413_instead(server):
    with connect(server.url) as sock:
        sock.sendall(
            request_head("POST", "/api/generate", f"Content-Length: {ANNOUNCED}", "Expect: 100-continue")
        )
        status, _, body = read_response(sock)
        assert status == 413  # the final answer, and no "100 Continue" before it
        assert json.loads(body)["error"]["code"] == "request_too_large"
        assert_closed(sock)


def test_a_chunked_body_over_the_limit_is_refused_while_it_arrives(server):
    piece = b"x" * 1024
    planned = 1024  # 1 MiB of chunks, never finished: only a refusal on the way ends the request
    with connect(server.url) as sock:
        sock.sendall(request_head("POST", "/v1/completions", "Content-Type: application/json",
                                  "Transfer-Encoding: chunked"))
        sent = 0
        for _ in range(planned):
            sock.sendall(chunk(piece))
            sent += len(piece)
            readable, _, _ = select.select([sock], [], [], 0.02)
            if readable:
                break
        else:
            readable, _, _ = select.select([sock], [], [], 2)
            assert readable, f"no answer after {sent} bytes of a chunked body (the limit is {LIMIT})"
        assert sent < 16 * LIMIT, f"the answer came only after {sent} bytes"
        status, headers, body = read_response(sock)
        assert status == 413
        assert headers["content-type"] == "application/json"
        assert json.loads(body) == {
            "error": {
                "message": f"The request body is over the limit of {LIMIT} bytes.",
                "type": "invalid_request_error",
                "param": None,
                "code": "request_too_large",
            }
        }
        assert_closed(sock)


def test_a_chunked_body_within_the_limit_is_parsed_and_served(server):
    payload = json.dumps({"prompt": "The capital of France is", "max_tokens": 1}).encode()
    with connect(server.url) as sock:
        sock.sendall(request_head("POST", "/api/generate", "Content-Type: application/json",
                                  "Transfer-Encoding: chunked"))
        for start in range(0, len(payload), 10):
            sock.sendall(chunk(payload[start:start + 10]))
        sock.sendall(b"0\r\n\r\n")
        sock.settimeout(120)  # a generation
        status, _, body = read_response(sock)
    answer = json.loads(body)
    assert status == 200, answer  # not a 400 for a missing prompt: the body was read
    assert answer["tokens_generated"] == 1
    assert answer["text"]


def test_the_server_keeps_serving_after_refusals(server):
    # After every refusal above (and one more here), normal requests are served.
    refused_announced_body(server.url, "/api/generate")
    assert httpx.get(f"{server.url}/health/live", timeout=10).status_code == 200
    response = httpx.post(f"{server.url}/api/generate", json={"prompt": "Hi", "max_tokens": 1}, timeout=120)
    assert response.status_code == 200
    assert response.json()["tokens_generated"] == 1
    # A body of exactly the limit is within it: Django answers (400 for the bad JSON), not the protocol.
    exactly = httpx.post(f"{server.url}/api/generate", content=b"{" + b" " * (LIMIT - 1),
                         headers={"Content-Type": "application/json"}, timeout=10)
    assert exactly.status_code == 400
    assert exactly.json()["error"]["code"] != "request_too_large"


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/api/generate", {"error": {"code": "bad_request", "message": "Bad request: the Host header is not allowed."}}),
        (
            "/v1/models",
            {
                "error": {
                    "message": "Bad request: the Host header is not allowed.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "bad_request",
                }
            },
        ),
    ],
)
def test_a_host_not_allowed_gets_a_json_400_in_the_api_shape(server, path, expected):
    response = httpx.get(f"{server.url}{path}", headers={"Host": "evil.example"}, timeout=10)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == expected


def test_an_unknown_url_under_v1_is_a_404_in_openai_shape(server):
    response = httpx.get(f"{server.url}/v1/nope", timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {
            "message": "No such endpoint: /v1/nope.",
            "type": "invalid_request_error",
            "param": None,
            "code": "not_found",
        }
    }


def test_the_limit_applies_behind_tls_too(tmp_path_factory):
    server = start_tls_server(tmp_path_factory.mktemp("limits-tls"), LLM_MAX_REQUEST_BYTES=str(LIMIT))
    try:
        context = ssl.create_default_context(cafile=str(server.cert_file))
        status, headers, body, elapsed = refused_announced_body(server.url, "/v1/completions", context)
        assert status == 413
        assert elapsed < 3
        assert headers["content-type"] == "application/json"
        assert body["error"]["code"] == "request_too_large"
    finally:
        stop_server(server)
