"""Headless Chromium driven over the DevTools protocol: open pages, run script in them, and
record what the page reports: Content-Security-Policy violations (its `securitypolicyviolation`
events), console and log messages, uncaught exceptions, and the headers of each document.

The page's own scripts stay under the page's CSP; what the test evaluates (and the listener
that reports violations) is DevTools' and is not.
"""

import base64
import contextlib
import json
import shutil
import subprocess
import time
from pathlib import Path

from websockets.sync.client import connect

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--remote-debugging-port=0",
]

# Reports every violation of the page's policy through the binding below (added on each new document).
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => window.__cspViolation(JSON.stringify({
  directive: event.effectiveDirective, blocked: event.blockedURI, source: event.sourceFile,
  line: event.lineNumber, sample: event.sample, page: document.location.href,
})));
"""


def chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "the tests need Chromium: `make test` installs Debian's package"
    return browser


class Page:
    """One tab. `violations`, `console`, `exceptions` and `documents` fill as the page runs."""

    def __init__(self, profile: Path, timeout: float = 60):
        self.timeout = timeout
        self.violations: list[dict] = []
        self.console: list[str] = []
        self.exceptions: list[str] = []
        self.documents: list[dict] = []  # {"url", "status", "headers"} of each page loaded
        self._id = 0
        self._resources = contextlib.ExitStack()
        self._process = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + timeout
            while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise RuntimeError("Chromium did not open its DevTools port")
                time.sleep(0.1)
            port, path = port_file.read_text().splitlines()[:2]
            self._socket = self._resources.enter_context(
                connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=timeout)
            )
            target = self._send("Target.createTarget", url="about:blank")["targetId"]
            self._session = self._send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable")
            self.send("Runtime.addBinding", name="__cspViolation")
            self.send("Page.addScriptToEvaluateOnNewDocument", source=REPORT_VIOLATIONS)
        except BaseException:
            self.close()
            raise

    def close(self):
        self._resources.close()
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- the protocol -------------------------------------------------------------------

    def _send(self, method: str, session: str | None = None, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._socket.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def send(self, method: str, **params):
        return self._send(method, self._session, **params)

    def _receive(self, deadline: float) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("Chromium did not answer in time")
        message = json.loads(self._socket.recv(timeout=remaining))
        self._record(message.get("method"), message.get("params", {}))
        return message

    def _record(self, event: str | None, params: dict):
        if event == "Runtime.bindingCalled" and params["name"] == "__cspViolation":
            self.violations.append(json.loads(params["payload"]))
        elif event == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(arg.get("value", arg.get("description", ""))) for arg in params["args"]))
        elif event == "Log.entryAdded":
            self.console.append(params["entry"]["text"])
        elif event == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.exceptions.append(details.get("exception", {}).get("description") or details["text"])
        elif event == "Network.responseReceived" and params["type"] == "Document":
            response = params["response"]
            headers = {name.lower(): value for name, value in response["headers"].items()}
            self.documents.append({"url": response["url"], "status": response["status"], "headers": headers})

    def pump(self, seconds: float):
        """Receive events for a while (e.g. violations reported after the page loaded)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self._receive(deadline)
            except TimeoutError:
                return

    # --- what tests use -----------------------------------------------------------------------

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def _navigation(self, action):
        """Run `action`, which makes the page load another document, and wait until it has loaded."""
        self.evaluate("window.__previousDocument = true")
        action()
        self.wait_for("!window.__previousDocument && document.readyState === 'complete'")

    def goto(self, url: str):
        self._navigation(lambda: self.send("Page.navigate", url=url))

    def follow(self, script: str):
        """Run a script that leads to another page (submits a form, clicks a link), and wait for it."""
        self._navigation(lambda: self.evaluate(script))

    def wait_for(self, expression: str, timeout: float | None = None):
        """Poll `expression` in the page until it is truthy; its value. (While a document is
        replaced, evaluating can fail: that counts as falsy.)"""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} stayed falsy")
            self.pump(0.2)

    def screenshot(self, path: Path) -> Path:
        """The page as it looks now, as a PNG."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return path

    def csp_messages(self) -> list[str]:
        """Console and log lines about the Content-Security-Policy."""
        return [line for line in self.console if "Content Security Policy" in line or "Content-Security-Policy" in line]


def log_in_to_the_admin(page: Page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.follow(
        f"document.getElementById('id_username').value = {username!r};"
        f"document.getElementById('id_password').value = {password!r};"
        "document.getElementById('login-form').submit()"
    )
    assert page.evaluate("location.pathname") == "/admin/", "the admin login failed"


def assert_no_violation(page: Page):
    page.pump(0.5)  # violations are reported asynchronously
    assert page.violations == []
    assert page.csp_messages() == []
    assert page.exceptions == []
