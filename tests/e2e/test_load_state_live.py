"""Load state and the admin's load actions, through real servers: the state table after
start-up, a failed load with its error, "load now" in a real browser, and an action
issued on one process applied by another that shares its database."""

import re
import time

import httpx
import pytest

from tests.support.admin_forms import admin_session, form_fields
from tests.support.chromium import Page
from tests.support.server import ADMIN_PASSWORD, ADMIN_USER, start_server, stop_server, superuser

BUNDLED = "google/gemma-3-270m"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
MISSING = "local/missing-file"
HEARTBEAT = "0.5"

SETUP = (
    # One start-up model; SmolLM2 waits for "load now".
    "from catalog.models import ModelEntry; "
    f"ModelEntry.objects.exclude(model_id={BUNDLED!r}).update(load_at_startup=False); "
    f"ModelEntry.objects.create(model_id={MISSING!r}, display_name='missing', source='gguf_file', "
    "location='/nonexistent/models', filename='missing.gguf', capabilities=['generate'], load_at_startup=False)",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("load-state")
    server = start_server(tmp_path, setup=(*SETUP, superuser(ADMIN_USER)), LLM_HEARTBEAT_SECONDS=HEARTBEAT)
    yield server
    stop_server(server)


def pk_of(server, model_id: str) -> str:
    code = f"from catalog.models import ModelEntry; print(ModelEntry.objects.get(model_id={model_id!r}).pk)"
    return server.manage("shell", "-c", code).strip().splitlines()[-1]


def change_path(server, model_id: str) -> str:
    return f"/admin/catalog/modelentry/{pk_of(server, model_id)}/change/"


def states_on_page(html: str) -> dict[str, str]:
    """Each process's state, from the change page's load state table."""
    return dict(re.findall(r'data-process="([^"]+)" data-state="([^"]+)"', html))


def wait_for_state(client: httpx.Client, path: str, state: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while True:
        html = client.get(path).text
        states = states_on_page(html)
        if states and all(value == state for value in states.values()):
            return html
        if time.monotonic() > deadline:
            raise AssertionError(f"states {states}, not all {state}")
        time.sleep(0.5)


def post_action(client: httpx.Client, path: str, action: str) -> httpx.Response:
    """Press one of the change page's load state buttons: the change form, posted to the button's URL."""
    page = client.get(path).text
    action_url = re.search(rf'value="{action}" formaction="([^"]+)"', page).group(1)
    return client.post(action_url, data=form_fields(page), headers={"Referer": f"{client.base_url}{path}"})


def test_the_start_up_model_shows_loaded_on_the_server(server):
    with admin_session(server.url, ADMIN_USER, ADMIN_PASSWORD) as client:
        html = wait_for_state(client, change_path(server, BUNDLED), "loaded")
        assert "On each server process" in html
        listing = client.get("/admin/catalog/modelentry/").text
        assert "loaded on 1/1" in listing
        assert "not loaded (0/1)" in listing  # SmolLM2 and the missing file


def test_load_now_of_a_missing_file_shows_failed_with_the_error(server):
    with admin_session(server.url, ADMIN_USER, ADMIN_PASSWORD) as client:
        path = change_path(server, MISSING)
        response = post_action(client, path, "load")
        assert response.status_code == 200 and "Loading local/missing-file on every server process" in response.text
        html = wait_for_state(client, path, "failed", timeout=60)
        assert "could not be loaded" in html and "missing.gguf" in html
        assert "failed on 1/1" in client.get("/admin/catalog/modelentry/").text


def test_load_now_in_the_browser_turns_the_state_to_loaded(server, tmp_path):
    with Page(tmp_path) as page:
        try:
            page.goto(f"{server.url}/admin/login/")
            page.follow(
                f"document.getElementById('id_username').value = {ADMIN_USER!r};"
                f"document.getElementById('id_password').value = {ADMIN_PASSWORD!r};"
                "document.getElementById('login-form').submit()"
            )
            page.goto(f"{server.url}{change_path(server, SMOLLM2)}")
            assert page.evaluate("document.querySelector('#load-state tbody tr').dataset.state") == "not-loaded"
            page.follow("document.querySelector('button[value=load]').click()")
            assert "on every server process" in page.evaluate("document.querySelector('.messagelist').textContent")
            deadline = time.monotonic() + 90
            while page.evaluate("document.querySelector('#load-state tbody tr').dataset.state") != "loaded":
                assert time.monotonic() < deadline, "SmolLM2 did not show loaded"
                time.sleep(1)
                page.goto(page.evaluate("location.href"))
            assert page.exceptions == [] and page.violations == []
        except BaseException:
            print("screenshot:", page.screenshot(tmp_path / "load-now.png"))
            raise


def test_an_action_issued_on_one_process_is_applied_by_another(server, tmp_path):
    # A second server on the same database, as a second replica would be.
    other = start_server(tmp_path, migrate=False, DATABASE_URL=server.env["DATABASE_URL"],
                         LLM_HEARTBEAT_SECONDS=HEARTBEAT)
    try:
        assert BUNDLED in httpx.get(f"{other.url}/health/ready").json()["loaded_models"]
        with admin_session(server.url, ADMIN_USER, ADMIN_PASSWORD) as client:
            path = change_path(server, BUNDLED)
            html = wait_for_state(client, path, "loaded")
            assert len(states_on_page(html)) == 2
            assert post_action(client, path, "unload").status_code == 200
            deadline = time.monotonic() + 30
            while BUNDLED in httpx.get(f"{other.url}/health/ready").json()["loaded_models"]:
                assert time.monotonic() < deadline, "the other server did not unload the model"
                time.sleep(0.5)
            wait_for_state(client, path, "unloaded", timeout=30)
    finally:
        stop_server(other)
