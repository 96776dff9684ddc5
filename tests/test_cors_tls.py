"""HTTPS through Daphne's TLS endpoint with a self-signed certificate made here, CORS for
the allowed browser origins only, and the security headers, on a real server."""

import datetime
import ipaddress
import ssl

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.server import start_server, stop_server

ALLOWED_ORIGIN = "https://app.example.com"


def self_signed_certificate(directory) -> tuple:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def start_tls_server(tmp_path, **overrides: str):
    """A server with Daphne's own TLS on a self-signed certificate (`server.cert_file`), HTTPS only."""
    cert_file, key_file = self_signed_certificate(tmp_path)
    server = start_server(
        tmp_path,
        scheme="https",
        LLM_TLS_CERT_FILE=str(cert_file),
        LLM_TLS_KEY_FILE=str(key_file),
        DJANGO_HTTPS="true",
        **overrides,
    )
    server.cert_file = cert_file
    return server


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    server = start_tls_server(
        tmp_path_factory.mktemp("tls-server"), CORS_ALLOWED_ORIGINS=f"{ALLOWED_ORIGIN},https://other.example.com"
    )
    yield server
    stop_server(server)


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


def test_with_https_on_the_api_answers_plain_http_and_pages_are_redirected(settings):
    """In-cluster callers reach the pod over plain HTTP through the Service: the API must not
    answer them with a 301 to an https address that nothing serves inside the cluster."""
    from django.test import Client

    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    for path in ["/api/nowhere", "/v1/nowhere", "/health/live"]:
        assert client.get(path).status_code != 301, path
    redirected = client.get("/admin/login/")
    assert redirected.status_code == 301 and redirected["Location"].startswith("https://")
