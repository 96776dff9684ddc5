"""The playground's socket through a real server: this site's origin only, and disabled models
for the staff who may change them (the page and the socket in process: tests/unit/test_playground.py)."""

import json

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.admin_forms import admin_session
from tests.support.server import free_port, start_server, stop_server

GEMMA = "google/gemma-3-270m"
PUBLIC_ORIGIN = "https://llm.example.com"  # the proxy's, in DJANGO_CSRF_TRUSTED_ORIGINS
STAFF = (("viewer", "view"), ("editor", "change"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """No model loaded at start; Gemma disabled, to be tried in the playground by those who may."""
    users = "; ".join(
        f"u = User.objects.create_user({name!r}, password='x-{name}-password-1234', is_staff=True); "
        f"u.user_permissions.set(Permission.objects.filter(codename='{action}_modelentry'))"
        for name, action in STAFF
    )
    server = start_server(
        tmp_path_factory.mktemp("playground-server"),
        DJANGO_CSRF_TRUSTED_ORIGINS=PUBLIC_ORIGIN,
        setup=(
            "from catalog.models import ModelEntry; ModelEntry.objects.update(load_at_startup=False); "
            f"ModelEntry.objects.filter(model_id={GEMMA!r}).update(enabled=False)",
            "from django.contrib.auth.models import Permission, User; " + users,
        ),
    )
    yield server
    stop_server(server)


def session_cookie(server, username: str) -> str:
    with admin_session(server.url, username, f"x-{username}-password-1234") as client:
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def open_socket(server, cookie: str, origin: str | None):
    return connect(server.url.replace("http", "ws", 1) + "/ws/playground/", origin=origin,
                   additional_headers={"Cookie": cookie}, open_timeout=30)


def reply_to(socket, message: dict) -> list[dict]:
    """The messages that answer one request, up to its `done` or `error`."""
    socket.send(json.dumps(message))
    replies = [json.loads(socket.recv(timeout=300))]
    while replies[-1]["type"] == "delta":
        replies.append(json.loads(socket.recv(timeout=300)))
    return replies


def test_the_socket_takes_this_sites_origin_by_scheme_host_and_port(server):
    cookie = session_cookie(server, "viewer")
    port = server.url.rsplit(":", 1)[1]
    # Pages the browser sends the cookie from, but of another origin: another port or
    # scheme of the same host, another allowed host name, the trusted origin over plain HTTP.
    for origin in (f"http://127.0.0.1:{free_port()}", f"https://127.0.0.1:{port}", f"http://localhost:{port}",
                   "http://llm.example.com", None):
        with pytest.raises(InvalidStatus) as refused:
            open_socket(server, cookie, origin)
        assert refused.value.response.status_code == 403, origin
    for origin in (server.url, PUBLIC_ORIGIN):
        with open_socket(server, cookie, origin) as socket:
            replies = reply_to(socket, {"type": "chat", "id": "1", "messages": []})  # invalid: answered
            assert replies[-1]["error"]["code"] == "invalid_request", (origin, replies)


def test_only_staff_who_may_change_the_models_try_a_disabled_one(server):
    request = {"type": "generate", "id": "1", "model": GEMMA, "prompt": "The capital of France is", "max_tokens": 2}
    with open_socket(server, session_cookie(server, "viewer"), server.url) as socket:
        replies = reply_to(socket, request)
        assert [reply["type"] for reply in replies] == ["error"], replies
        assert replies[0]["error"]["code"] == "model_not_allowed"
    with open_socket(server, session_cookie(server, "editor"), server.url) as socket:
        done = reply_to(socket, request)[-1]
        assert done["type"] == "done" and done["model"] == GEMMA and done["tokens_generated"] == 2, done
