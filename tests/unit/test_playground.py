"""The admin's playground: its page (staff who may view the models; disabled entries for
those who may change them), listing the catalog's entries with the sampling defaults a
request would get; its socket's checks of the session and the Origin, in process and
through a real server."""

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from catalog.models import ModelEntry, ServiceSettings

PLAYGROUND = "/admin/playground/"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


def staff_member(username: str, *actions: str):
    """A staff member who may do `actions` ("view", "change") to the model entries, and nothing else."""
    user = get_user_model().objects.create_user(username, password=f"x-{username}-password-1234", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label="catalog", codename__in=[f"{action}_modelentry" for action in actions]
    ))
    return user


def page_config(response) -> dict:
    match = re.search(r'<script id="playground-config" type="application/json">(.*?)</script>',
                      response.content.decode())
    assert match, "the page carries its data in a json_script block"
    return json.loads(match.group(1))


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(staff_member("staff", "change"))
    return client


@pytest.mark.django_db
def test_anonymous_is_sent_to_the_login():
    response = Client().get(PLAYGROUND)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/login/?next={PLAYGROUND}"


@pytest.mark.django_db
def test_a_user_who_is_not_staff_is_sent_to_the_login():
    client = Client()
    client.force_login(get_user_model().objects.create_user("visitor", password="x-visitor-password-1234"))
    response = client.get(PLAYGROUND)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_the_page_lists_the_models_with_their_defaults(staff_client):
    service = ServiceSettings.load()
    service.default_temperature = 0.3
    service.save()
    gemma = ModelEntry.objects.get(model_id="google/gemma-3-270m")
    gemma.default_max_tokens, gemma.default_top_k = 64, 40
    gemma.save()
    smol = ModelEntry.objects.get(model_id="HuggingFaceTB/SmolLM2-135M-Instruct")
    smol.enabled, smol.default_temperature = False, 0.9
    smol.save()

    response = staff_client.get(PLAYGROUND)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Playground" in html and 'id="site-name"' in html  # the admin's page, with its header
    assert '<script src="/static/workbench/playground.js" defer></script>' in html
    assert "<script>" not in html and " onclick=" not in html  # nothing inline (the CSP)
    config = page_config(response)
    assert config["websocket_path"] == "/ws/playground/"
    models = {model["id"]: model for model in config["models"]}
    assert models["google/gemma-3-270m"]["enabled"] is True
    assert models["google/gemma-3-270m"]["defaults"] == {
        "temperature": 0.3, "max_tokens": 64, "top_p": None, "top_k": 40, "repetition_penalty": None,
    }
    # A disabled entry is listed (after the enabled ones), to be tried before it is enabled.
    assert models["HuggingFaceTB/SmolLM2-135M-Instruct"]["enabled"] is False
    assert models["HuggingFaceTB/SmolLM2-135M-Instruct"]["defaults"]["temperature"] == 0.9
    assert models["HuggingFaceTB/SmolLM2-135M-Instruct"]["chat"] is True
    assert config["models"][-1]["id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.mark.django_db
def test_staff_who_may_only_view_the_models_are_offered_the_enabled_ones():
    ModelEntry.objects.filter(model_id=SMOLLM2).update(enabled=False)
    viewer = Client()
    viewer.force_login(staff_member("viewer", "view"))
    assert [model["id"] for model in page_config(viewer.get(PLAYGROUND))["models"]] == ["google/gemma-3-270m"]
    assert 'href="/admin/playground/"' in viewer.get("/admin/").content.decode()
    # Staff who may not see the models at all: no playground, and no link to it.
    other = Client()
    other.force_login(staff_member("other"))
    assert other.get(PLAYGROUND).status_code == 403
    assert 'href="/admin/playground/"' not in other.get("/admin/").content.decode()


@pytest.mark.django_db
def test_the_page_preselects_a_model_and_leaves_out_those_the_environment_forbids(staff_client, settings):
    settings.LLM_ALLOWED_MODELS = ["google/gemma-3-270m"]
    config = page_config(staff_client.get(PLAYGROUND, {"model": "google/gemma-3-270m"}))
    assert config["selected"] == "google/gemma-3-270m"
    assert [model["id"] for model in config["models"]] == ["google/gemma-3-270m"]


@pytest.mark.django_db
def test_the_admin_links_to_the_playground(staff_client):
    user = get_user_model().objects.get(username="staff")
    user.is_superuser = True
    user.save()
    index = staff_client.get("/admin/").content.decode()
    assert f'href="{PLAYGROUND}"' in index
    entry = ModelEntry.objects.get(model_id="google/gemma-3-270m")
    change = staff_client.get(f"/admin/catalog/modelentry/{entry.pk}/change/").content.decode()
    assert f'href="{PLAYGROUND}?model=google%2Fgemma-3-270m"' in change
    assert "Try in playground" in change


# --- The playground's WebSocket: the admin session, staff only, from this site only ---------

def playground_socket(*, origin: str = "http://localhost", session_key: str | None = None,
                      host: str = "localhost", forwarded_proto: str | None = None):
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator

    from workbench.playground_consumer import websocket_urlpatterns

    headers = [(b"host", host.encode()), (b"origin", origin.encode())]
    if forwarded_proto:
        headers.append((b"x-forwarded-proto", forwarded_proto.encode()))
    if session_key:
        headers.append((b"cookie", f"sessionid={session_key}".encode()))
    return WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/playground/", headers=headers)


def session_of(user) -> str:
    client = Client()
    client.force_login(user)
    return client.session.session_key


async def refused_code(socket) -> tuple[dict, int]:
    reply = await socket.receive_json_from(timeout=10)
    closed = await socket.receive_output(timeout=10)
    return reply, closed["code"]


@pytest.mark.django_db(transaction=True)
async def test_the_socket_refuses_anyone_but_staff():
    from asgiref.sync import sync_to_async

    visitor = await sync_to_async(get_user_model().objects.create_user)("visitor", password="x-visitor-password-1")
    # Staff too, when they may not see the models.
    other = await sync_to_async(staff_member)("other")
    for session_key in (None, *[await sync_to_async(session_of)(user) for user in (visitor, other)]):
        socket = playground_socket(session_key=session_key)
        connected, _ = await socket.connect(timeout=10)
        assert connected  # accepted, then told why and closed, as /ws/generate/ does without a key
        reply, code = await refused_code(socket)
        assert reply["error"]["code"] == "unauthorized" and code == 4401
        await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_socket_serves_a_staff_session_from_this_site_only():
    from asgiref.sync import sync_to_async

    staff = await sync_to_async(staff_member)("staff", "view")
    session_key = await sync_to_async(session_of)(staff)
    # Another site's page would send the cookie too: its handshake is refused.
    socket = playground_socket(origin="http://evil.example", session_key=session_key)
    connected, _ = await socket.connect(timeout=10)
    assert not connected
    socket = playground_socket(session_key=session_key)
    connected, _ = await socket.connect(timeout=10)
    assert connected
    await socket.send_json_to({"type": "chat", "id": "1", "messages": []})  # invalid: answered, not refused
    reply = await socket.receive_json_from(timeout=10)
    assert reply["type"] == "error" and reply["error"]["code"] == "invalid_request", reply
    await socket.disconnect()


@pytest.mark.django_db
def test_a_disabled_entry_resolves_only_when_asked_and_within_the_environment(settings):
    from catalog import snapshot
    from catalog.selectors import resolve_model
    from common.errors import ModelNotAllowed

    ModelEntry.objects.filter(model_id="google/gemma-3-270m").update(enabled=False)
    catalog = snapshot.load()
    with pytest.raises(ModelNotAllowed):
        resolve_model(catalog, model_id="google/gemma-3-270m")
    tried = resolve_model(catalog, model_id="google/gemma-3-270m", include_disabled=True)
    assert tried.model_id == "google/gemma-3-270m"
    settings.LLM_ALLOWED_MODELS = ["HuggingFaceTB/SmolLM2-135M-Instruct"]
    with pytest.raises(ModelNotAllowed):
        resolve_model(catalog, model_id="google/gemma-3-270m", include_disabled=True)


@pytest.mark.django_db(transaction=True)
async def test_behind_a_tls_proxy_the_page_is_https_and_trusted_origins_are_taken(settings):
    from asgiref.sync import sync_to_async

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # LLM_PROXY_HEADERS on
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]
    session_key = await sync_to_async(session_of)(await sync_to_async(staff_member)("staff", "view"))
    cases = [
        # (Origin, Host, X-Forwarded-Proto): taken?
        (("https://localhost", "localhost", "https"), True),
        (("http://localhost", "localhost", "https"), False),  # a plain-HTTP page of the same host
        (("https://localhost:8443", "localhost", "https"), False),  # another port
        (("https://evil.example", "evil.example", "https"), False),  # a Host not in ALLOWED_HOSTS
        (("https://llm.example.com", "10.0.0.7", "https"), True),  # a proxy that rewrites the Host
        (("http://llm.example.com", "localhost", "https"), False),
        (("https://llm.example.com:8443", "localhost", "https"), False),
    ]
    for (origin, host, proto), taken in cases:
        socket = playground_socket(origin=origin, host=host, forwarded_proto=proto, session_key=session_key)
        connected, _ = await socket.connect(timeout=10)
        assert connected is taken, (origin, host, proto)
        await socket.disconnect()
