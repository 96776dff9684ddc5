"""HTTPS through Daphne's TLS endpoint with a self-signed certificate made for it, CORS for
the allowed browser origins only, and the security headers, on a real server (the tls
preset, shared)."""

import ssl

import httpx
import pytest

from tests.support.server import CORS_ORIGINS

ALLOWED_ORIGIN = CORS_ORIGINS[0]


@pytest.fixture(scope="module")
def client(tls_server):
    # Trusts exactly this certificate: the TLS handshake and host name are really checked.
    context = ssl.create_default_context(cafile=str(tls_server.cert_file))
    with httpx.Client(base_url=tls_server.url, verify=context, timeout=120) as client:
        yield client


def test_https_with_the_certificate(client, tls_server):
    assert tls_server.url.startswith("https://")
    response = client.post("/api/generate", json={"prompt": "The capital of France is", "max_tokens": 2})
    assert response.status_code == 200
    assert response.json()["tokens_generated"] == 2
    # Over HTTPS, browsers are told to stay on HTTPS.
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"


def test_an_untrusted_certificate_is_refused(tls_server):
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{tls_server.url}/health/live")  # the system's CAs do not know it


def test_security_headers(client):
    headers = client.get("/api/models").headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    # The admin's cookies are sent over HTTPS only.
    login = client.get("/admin/login/")
    csrf_cookie = login.headers["set-cookie"]
    assert "csrftoken=" in csrf_cookie and "Secure" in csrf_cookie


def test_cors_preflight_for_an_allowed_origin(client):
    response = client.options(
        "/api/generate",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-request-id",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    allowed = {name.strip() for name in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-request-id"} <= allowed
    assert "POST" in response.headers["access-control-allow-methods"]


def test_cors_answers_carry_the_exposed_headers(client):
    response = client.post(
        "/api/generate", json={"prompt": "Hi", "max_tokens": 1}, headers={"Origin": ALLOWED_ORIGIN}
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    exposed = {name.strip() for name in response.headers["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "retry-after"} <= exposed


def test_other_origins_get_no_cors_headers(client):
    for method in ["OPTIONS", "GET"]:
        headers = {"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"}
        response = client.request(method, "/api/models", headers=headers)
        assert "access-control-allow-origin" not in response.headers
