"""The request body limit at the protocol layer (inference_service.http_protocol), and the
JSON answers for a Host that is not allowed and for unknown URLs, on a real server (the
protocol preset, shared; behind TLS, the tls preset).

Raw sockets where an HTTP client would hide what is tested: that the 413 comes before the
body was sent, and how a chunked body is received.
"""

import json
import select
import ssl
import time

import httpx
import pytest

from tests.support.raw_http import assert_closed, connect, read_response, request_head
from tests.support.server import SMALL_BODY_LIMIT

LIMIT = SMALL_BODY_LIMIT
ANNOUNCED = 300_000_000


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n"


def refused_announced_body(url: str, path: str, context=None) -> tuple[int, dict, dict, float]:
    with connect(url, context) as sock:
        started = time.monotonic()
        sock.sendall(request_head("POST", path, "Content-Type: application/json", f"Content-Length: {ANNOUNCED}"))
        status, headers, body = read_response(sock)
        elapsed = time.monotonic() - started
        assert_closed(sock)
    return status, headers, json.loads(body), elapsed


def test_an_announced_body_over_the_limit_is_refused_before_it_is_sent(protocol_server):
    status, headers, body, elapsed = refused_announced_body(protocol_server.url, "/api/generate")
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


def test_the_refusal_is_in_openai_shape_under_v1(protocol_server):
    status, headers, body, elapsed = refused_announced_body(protocol_server.url, "/v1/completions")
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


def test_a_client_waiting_for_100_continue_gets_the_413_instead(protocol_server):
    with connect(protocol_server.url) as sock:
        sock.sendall(
            request_head("POST", "/api/generate", f"Content-Length: {ANNOUNCED}", "Expect: 100-continue")
        )
        status, _, body = read_response(sock)
        assert status == 413  # the final answer, and no "100 Continue" before it
        assert json.loads(body)["error"]["code"] == "request_too_large"
        assert_closed(sock)


def test_a_chunked_body_over_the_limit_is_refused_while_it_arrives(protocol_server):
    piece = b"x" * 1024
    planned = 1024  # 1 MiB of chunks, never finished: only a refusal on the way ends the request
    with connect(protocol_server.url) as sock:
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


def test_a_chunked_body_within_the_limit_is_parsed_and_served(protocol_server):
    payload = json.dumps({"prompt": "The capital of France is", "max_tokens": 1}).encode()
    with connect(protocol_server.url) as sock:
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


def test_the_server_keeps_serving_after_refusals(protocol_server):
    # After every refusal above (and one more here), normal requests are served.
    refused_announced_body(protocol_server.url, "/api/generate")
    assert httpx.get(f"{protocol_server.url}/health/live", timeout=10).status_code == 200
    response = httpx.post(f"{protocol_server.url}/api/generate", json={"prompt": "Hi", "max_tokens": 1}, timeout=120)
    assert response.status_code == 200
    assert response.json()["tokens_generated"] == 1
    # A body of exactly the limit is within it: Django answers (400 for the bad JSON), not the protocol.
    exactly = httpx.post(f"{protocol_server.url}/api/generate", content=b"{" + b" " * (LIMIT - 1),
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
def test_a_host_not_allowed_gets_a_json_400_in_the_api_shape(protocol_server, path, expected):
    response = httpx.get(f"{protocol_server.url}{path}", headers={"Host": "evil.example"}, timeout=10)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == expected


def test_an_unknown_url_under_v1_is_a_404_in_openai_shape(protocol_server):
    response = httpx.get(f"{protocol_server.url}/v1/nope", timeout=10)
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


def test_the_limit_applies_behind_tls_too(tls_server):
    context = ssl.create_default_context(cafile=str(tls_server.cert_file))
    status, headers, body, elapsed = refused_announced_body(tls_server.url, "/v1/completions", context)
    assert status == 413
    assert elapsed < 3
    assert headers["content-type"] == "application/json"
    assert body["error"]["code"] == "request_too_large"
