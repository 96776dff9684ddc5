"""The admin login's lockout (django-axes), the model form's refusal of names that would
leave their folder or are no Hugging Face repository, and the Content-Security-Policy
(django-csp).

Lockouts are tested on a server of their own (they would lock the shared server's admin
out), behind a "proxy": LLM_PROXY_HEADERS is on, so each test picks its client addresses
with X-Forwarded-For. (Swagger UI and the admin in a browser under the policy: tests/e2e/test_browser.py.)
"""

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import httpx
import pytest

from tests.support.admin_forms import admin_session, change_form, form_fields
from tests.support.server import ADMIN_PASSWORD, ADMIN_USER, ROOT, server_environment, start_server, stop_server, superuser

FAILURE_LIMIT = 3
OTHER_USER = "operator"
LOCKED_MESSAGE = "Too many failed logins"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("lockout-server")
    server = start_server(
        tmp_path,
        LLM_PROXY_HEADERS="true",
        ADMIN_LOGIN_FAILURE_LIMIT=str(FAILURE_LIMIT),
        LLM_REQUIRE_API_KEY="true",
        # No model is needed here: the server is ready without loading one.
        setup=("from catalog.models import ModelEntry; ModelEntry.objects.update(load_at_startup=False)",
               superuser(ADMIN_USER), superuser(OTHER_USER)),
    )
    yield server
    stop_server(server)


def log_in(server, username: str, password: str, address: str) -> httpx.Response:
    """Post the admin's login form as a browser at `address` would (not following the redirect)."""
    with httpx.Client(base_url=server.url, timeout=60, headers={"X-Forwarded-For": address}) as client:
        fields = form_fields(client.get("/admin/login/").text)
        response = client.post(
            "/admin/login/?next=/admin/",
            data={**fields, "username": username, "password": password},
            headers={"Referer": f"{server.url}/admin/login/"},
        )
        if response.status_code == 302:  # logged in: the admin's index opens with the session
            assert "Site administration" in client.get(response.headers["location"]).text
        return response


def assert_logged_in(response: httpx.Response):
    assert response.status_code == 302, response.text[:300]
    assert response.headers["location"] == "/admin/"


def assert_wrong_password(response: httpx.Response):
    assert response.status_code == 200  # the form again, with Django's message
    assert "Please enter the correct username and password" in response.text


def assert_locked_out(response: httpx.Response):
    assert response.status_code == 429, response.text[:300]
    assert LOCKED_MESSAGE in response.text
    assert "15 minutes" in response.text
    assert "sessionid" not in response.headers.get("set-cookie", "")


def lock_out(server, username: str, address: str):
    """Wrong passwords up to the limit: all but the last are answered with the form."""
    for _ in range(FAILURE_LIMIT - 1):
        assert_wrong_password(log_in(server, username, "not-the-password", address))
    assert_locked_out(log_in(server, username, "not-the-password", address))


def test_after_the_limit_even_the_right_password_is_refused(server):
    lock_out(server, ADMIN_USER, "203.0.113.1")
    assert_locked_out(log_in(server, ADMIN_USER, ADMIN_PASSWORD, "203.0.113.1"))


def test_the_right_password_from_another_address_logs_in(server):
    lock_out(server, ADMIN_USER, "203.0.113.2")
    # An attacker's failures cannot lock the real admin out from elsewhere.
    assert_logged_in(log_in(server, ADMIN_USER, ADMIN_PASSWORD, "198.51.100.2"))
    assert_locked_out(log_in(server, ADMIN_USER, ADMIN_PASSWORD, "203.0.113.2"))


def test_another_username_from_the_locked_address_logs_in(server):
    lock_out(server, ADMIN_USER, "203.0.113.3")
    assert_logged_in(log_in(server, OTHER_USER, ADMIN_PASSWORD, "203.0.113.3"))


def test_a_successful_login_clears_the_earlier_failures(server):
    address = "203.0.113.4"
    for _ in range(FAILURE_LIMIT - 1):
        assert_wrong_password(log_in(server, ADMIN_USER, "not-the-password", address))
    assert_logged_in(log_in(server, ADMIN_USER, ADMIN_PASSWORD, address))
    # A fresh count: as many failures again before the lockout.
    lock_out(server, ADMIN_USER, address)


def test_the_api_and_its_keys_answer_during_a_lockout(server):
    address = "203.0.113.5"
    lock_out(server, ADMIN_USER, address)
    key = server.manage("create_api_key", "during a lockout").strip()
    headers = {"X-Forwarded-For": address, "Authorization": f"Bearer {key}"}
    for path in ("/api/models", "/v1/models"):
        response = httpx.get(f"{server.url}{path}", headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        assert "google/gemma-3-270m" in response.text
    # API keys are checked as before: refused without one (this server requires them).
    assert httpx.get(f"{server.url}/api/models", headers={"X-Forwarded-For": address}).status_code == 401
    assert_locked_out(log_in(server, ADMIN_USER, ADMIN_PASSWORD, address))


def test_the_lockout_settings_come_from_the_environment(tmp_path):
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME.total_seconds(), s.AXES_LOCKOUT_PARAMETERS, "
        "s.AUTHENTICATION_BACKENDS[0], s.MIDDLEWARE[-1]]))"
    )
    environment = server_environment(
        tmp_path, DJANGO_SETTINGS_MODULE="inference_service.settings",
        ADMIN_LOGIN_FAILURE_LIMIT="7", ADMIN_LOGIN_COOLOFF_MINUTES="30",
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        7, 1800.0, [["username", "ip_address"]], "axes.backends.AxesStandaloneBackend", "axes.middleware.AxesMiddleware"
    ]
    environment["ADMIN_LOGIN_FAILURE_LIMIT"] = "0"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert result.returncode != 0
    assert "ADMIN_LOGIN_FAILURE_LIMIT must be between 1" in result.stderr


# --- The model form: malformed names are the field's error, never a 500 --------------------

ADD_MODEL = "/admin/catalog/modelentry/add/"
NOT_INSIDE = "Name a file inside the location"
NOT_A_REPOSITORY = "Not a Hugging Face repository id"


def field_error(html: str, field: str) -> str:
    match = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', html, re.S)
    return match.group(1) if match else ""


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"source": "hf_gguf", "location": "not a repository", "filename": "model.gguf"}, "location", NOT_A_REPOSITORY),
    ({"source": "hf_gguf", "location": "org/with--dashes", "filename": "model.gguf"}, "location", NOT_A_REPOSITORY),
    ({"source": "hf_gguf", "location": "org/model-GGUF", "filename": "../../model.gguf"}, "filename", NOT_INSIDE),
    ({"source": "hf_gguf", "location": "org/model-GGUF", "filename": "/etc/model.gguf"}, "filename", NOT_INSIDE),
    ({"source": "hf_gguf", "location": "org/model-GGUF", "filename": "Q4\\..\\model.gguf"}, "filename", NOT_INSIDE),
    ({"source": "hf_gguf", "location": "org/model-GGUF", "filename": "C:model.gguf"}, "filename", NOT_INSIDE),
    ({"source": "gguf_file", "location": "/srv/models", "filename": "../../etc/passwd"}, "filename", NOT_INSIDE),
    ({"source": "safetensors", "location": "no such folder!"}, "location", NOT_A_REPOSITORY),
])
def test_a_malformed_repository_or_file_name_is_the_fields_error(server, changes, field, message):
    with admin_session(server.url, ADMIN_USER, ADMIN_PASSWORD) as admin:
        response = change_form(admin, ADD_MODEL, model_id="test/malformed", display_name="Malformed", **changes)
    assert response.status_code == 200, response.text[:300]  # the form again, not a 500
    assert message in field_error(response.text, field), response.text[:3000]


# --- Content-Security-Policy ----------------------------------------------------------------


def policy(response: httpx.Response) -> dict[str, list[str]]:
    header = response.headers.get("content-security-policy")
    assert header, f"no Content-Security-Policy on {response.url}"
    directives = {}
    for directive in header.split(";"):
        name, *values = directive.split()
        directives[name] = values
    return directives


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(html: str, name: str) -> list[dict]:
    parser = _Tags()
    parser.feed(html)
    return [attrs for tag, attrs in parser.tags if tag == name]


def assert_strict(directives: dict[str, list[str]]):
    assert directives["default-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'self'"]
    assert directives["form-action"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["img-src"] == ["'self'", "data:"]
    # Never 'unsafe-inline', 'unsafe-eval', a wildcard or another origin.
    sources = [value for values in directives.values() for value in values]
    assert not [value for value in sources if "unsafe" in value or "*" in value or "://" in value]


def test_the_admin_login_page_has_a_strict_policy(server):
    response = httpx.get(f"{server.url}/admin/login/")
    assert response.status_code == 200
    directives = policy(response)
    assert_strict(directives)
    # The admin has no inline script or style: no nonce is sent.
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert not [script for script in tags(response.text, "script") if not script.get("src")]


def test_swagger_ui_has_a_strict_policy_and_only_nonced_inline_blocks(server):
    response = httpx.get(f"{server.url}/swagger-ui/")
    assert response.status_code == 200
    directives = policy(response)
    assert_strict(directives)
    match = re.fullmatch(r"'nonce-([A-Za-z0-9+/=]{16,})'", directives["script-src"][-1])
    assert match, directives["script-src"]
    nonce = match.group(1)
    assert directives["script-src"] == directives["style-src"] == ["'self'", f"'nonce-{nonce}'"]
    # Its inline start-up script and <style> carry this response's nonce; the other scripts are this server's.
    scripts = tags(response.text, "script")
    assert [script.get("nonce") for script in scripts if not script.get("src")] == [nonce]
    assert [script["src"] for script in scripts if script.get("src")] == [
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-standalone-preset.js",
    ]
    assert [style.get("nonce") for style in tags(response.text, "style")] == [nonce]
    assert "SwaggerUIBundle(" in response.text
    # A new nonce for each response.
    assert policy(httpx.get(f"{server.url}/swagger-ui/"))["script-src"] != directives["script-src"]
