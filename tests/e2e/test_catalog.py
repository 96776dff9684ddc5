"""Admin changes to the catalog take effect on the next request of a running server (the
catalog in process: tests/unit/test_catalog.py)."""

import re
import time

import httpx
import pytest

from tests.support.admin_forms import admin_session, change_form
from tests.support.server import ADMIN_PASSWORD, ADMIN_USER

pytestmark = pytest.mark.django_db
BUNDLED = "google/gemma-3-270m"


def test_admin_changes_take_effect_on_the_next_request(live_server):
    endless = {"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "temperature": 0}
    with admin_session(live_server.url, ADMIN_USER, ADMIN_PASSWORD) as admin:
        changelist = admin.get("/admin/catalog/modelentry/?q=gemma-3-270m").text
        path = re.search(r'href="(/admin/catalog/modelentry/\d+/change/)', changelist).group(1)

        assert "was changed successfully" in change_form(admin, path, default_max_tokens="3").text
        body = httpx.post(f"{live_server.url}/api/generate", json=endless, timeout=60).json()
        assert body["tokens_generated"] == 3

        assert "was changed successfully" in change_form(admin, path, default_max_tokens="", enabled=None).text
        response = httpx.post(f"{live_server.url}/api/generate", json=endless, timeout=60)
        assert response.status_code == 403
        assert BUNDLED not in httpx.get(f"{live_server.url}/health/ready").json()["loaded_models"]

        assert "was changed successfully" in change_form(admin, path, enabled="on").text
        started = time.monotonic()
        body = httpx.post(f"{live_server.url}/api/generate", json={**endless, "max_tokens": 2}, timeout=120).json()
        assert body["tokens_generated"] == 2  # loaded again on this request
        assert time.monotonic() - started < 100
