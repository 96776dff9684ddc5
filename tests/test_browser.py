"""Swagger UI in a real (headless) browser: it renders every endpoint from assets this
server serves itself (the browser has no network beyond the test server)."""

import re
import shutil
import subprocess

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
