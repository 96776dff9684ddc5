"""Engine worker processes under a real server: catalog entries to load, the server's model
states, waits, and the admin's switch of a model."""

import re
import threading
import time

import httpx
from django.conf import settings

from generation.engine import model_files
from tests.support.admin_forms import change_form

BUNDLED = "google/gemma-3-270m"

COPY = "local/gemma-copy"  # the bundled GGUF under another id: a second model to load


def copy_entry(model_id: str, gguf) -> str:
    return (
        "from catalog.models import ModelEntry; ModelEntry.objects.create("
        f"model_id={model_id!r}, display_name={model_id!r}, source='gguf_file', location={str(gguf.parent)!r}, "
        f"filename={gguf.name!r}, in_situ_quant='Q8_0', capabilities=['generate'])"
    )


# These servers run one start-up model, whose worker the tests count and measure: the
# bundled chat model is left to load on demand.
ONE_STARTUP_MODEL = (
    "from catalog.models import ModelEntry; "
    "ModelEntry.objects.exclude(model_id='google/gemma-3-270m').update(load_at_startup=False)"
)


def bundled_gguf():
    return model_files.bundled_gguf(model_files.GEMMA_PACKAGE, settings.LLM_MODEL_CACHE_DIR)


def ready(url: str) -> dict:
    return httpx.get(f"{url}/health/ready", timeout=30).json()


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def in_background(function, *args) -> tuple[threading.Thread, dict]:
    """Run `function(*args)` in a thread; its result or exception lands in the dict."""
    outcome = {}

    def run():
        try:
            outcome["result"] = function(*args)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def change_path(admin: httpx.Client, model_id: str) -> str:
    changelist = admin.get(f"/admin/catalog/modelentry/?q={model_id}").text
    return re.search(r'href="(/admin/catalog/modelentry/\d+/change/)', changelist).group(1)


def set_enabled(admin: httpx.Client, model_id: str, enabled: bool) -> None:
    response = change_form(admin, change_path(admin, model_id), enabled="on" if enabled else None)
    assert "was changed successfully" in response.text
