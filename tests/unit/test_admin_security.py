"""Without LLM_PROXY_HEADERS, X-Forwarded-For brings no fresh count of failed logins (django-axes
in process; the lockout on a real server behind a proxy: tests/e2e/test_admin_security.py)."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.support.server import ADMIN_PASSWORD, ADMIN_USER

FAILURE_LIMIT = 3
LOCKED_MESSAGE = "Too many failed logins"


@pytest.mark.django_db
def test_without_proxy_headers_a_forwarded_address_is_ignored(settings):
    """LLM_PROXY_HEADERS off (as in the tests' own settings): X-Forwarded-For is the client's
    own word, and a new one each time must not bring a fresh count."""
    settings.AXES_FAILURE_LIMIT = FAILURE_LIMIT
    get_user_model().objects.create_superuser(ADMIN_USER, "admin@example.com", ADMIN_PASSWORD)

    def post(password: str, forwarded_for: str, address="192.0.2.10"):
        return Client(REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR=forwarded_for).post(
            "/admin/login/?next=/admin/", {"username": ADMIN_USER, "password": password}
        )

    statuses = [post("not-the-password", f"198.51.100.{n}").status_code for n in range(FAILURE_LIMIT)]
    assert statuses == [200] * (FAILURE_LIMIT - 1) + [429]
    response = post(ADMIN_PASSWORD, "198.51.100.99")
    assert response.status_code == 429
    assert LOCKED_MESSAGE in response.content.decode()
    # The lock is the socket address's: another one logs in.
    assert post(ADMIN_PASSWORD, "198.51.100.99", address="192.0.2.11").status_code == 302
