"""Swagger UI in a real (headless) browser: it renders every endpoint from assets this
server serves itself (the browser has no network beyond the test server). Swagger UI and
the admin work under the Content-Security-Policy, with no violation reported."""

import re
import shutil
import subprocess

from tests.support.chromium import Page, assert_no_violation, log_in_to_the_admin
from tests.support.server import ADMIN_PASSWORD, ADMIN_USER

BROWSER_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=20000",
]


def rendered_dom(url: str, profile) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "the tests need Chromium: `make test` installs Debian's package"
    result = subprocess.run(
        [browser, *BROWSER_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )
    return result.stdout


def test_swagger_ui_renders_every_endpoint(live_server, tmp_path):
    dom = rendered_dom(f"{live_server.url}/swagger-ui/", tmp_path)
    rendered_paths = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert {"/api/models", "/api/generate", "/api/generate/stream", "/api/chat", "/api/chat/stream",
            "/health/live", "/health/ready"} <= rendered_paths
    assert "LLM Inference Service" in dom


# --- Under the Content-Security-Policy: the page runs, and the browser reports no violation ---

def assert_policy_sent(page: Page):
    assert page.documents
    for document in page.documents:
        assert "content-security-policy" in document["headers"], document["url"]


def test_swagger_ui_works_under_the_content_security_policy(live_server, page):
    page.goto(f"{live_server.url}/swagger-ui/")
    assert page.wait_for("document.querySelectorAll('.opblock').length") >= 7
    # Try it out: GET /api/models, answered in the page.
    operation = "#operations-models-api_models_retrieve"
    page.evaluate(f"document.querySelector('{operation} .opblock-summary-control').click()")
    page.wait_for(f"!!document.querySelector('{operation} .try-out__btn')")
    page.evaluate(f"document.querySelector('{operation} .try-out__btn').click()")
    page.wait_for(f"!!document.querySelector('{operation} .execute')")
    page.evaluate(f"document.querySelector('{operation} .execute').click()")
    status = f"{operation} .live-responses-table .response .response-col_status"
    assert page.wait_for(f"document.querySelector('{status}')?.textContent.trim()") == "200"
    assert_policy_sent(page)
    assert_no_violation(page)
    # The policy is in force: an inline script is refused, and reported.
    ran = page.evaluate(
        "const s = document.createElement('script'); s.textContent = 'window.inlineRan = true';"
        "document.body.appendChild(s); window.inlineRan === true"
    )
    page.pump(0.5)
    assert ran is False
    assert [violation["directive"] for violation in page.violations] == ["script-src-elem"]


def test_the_admin_works_under_the_content_security_policy(live_server, page):
    log_in_to_the_admin(page, live_server.url, ADMIN_USER, ADMIN_PASSWORD)
    assert page.evaluate("document.querySelector('#site-name').textContent.trim()") == "Django administration"
    assert "Site administration" in page.evaluate("document.title")
    # A list and a change form, with their scripts (the list's actions, the form's widgets).
    page.goto(f"{live_server.url}/admin/catalog/modelentry/")
    assert page.evaluate("document.querySelectorAll('#result_list tbody tr').length") >= 1
    page.follow("document.querySelector('#result_list tbody th a').click()")
    assert page.evaluate("location.pathname").endswith("/change/")
    assert page.evaluate("!!document.querySelector('#modelentry_form')")
    assert_policy_sent(page)
    assert_no_violation(page)
