"""With DJANGO_HTTPS on, pages are redirected to HTTPS and the API is not, in process (over
TLS on a real server: tests/e2e/test_cors_tls.py)."""


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
