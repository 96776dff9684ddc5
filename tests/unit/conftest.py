"""Fixtures of the in-process contract tests: the fake engine (tests.support.fake_worker)
installed as the process's, a catalog of two fake models, and Django's async client to call
the APIs without a socket; and cheap password hashing.

The tests are transactional (the views read and write the database from other threads), and a
transactional test's database is emptied after it: each test writes the catalog it uses itself,
whatever an earlier test left or emptied.
"""

import asyncio
import contextlib
import json
import threading

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from catalog.models import ModelEntry, ServiceSettings
from tests.support.fake_worker import FakeEngine
from tests.support.sse_client import Event, parse_events

BASE = "fake/base"  # the default model: raw continuations, and chats with its own template
CHAT = "fake/chat"  # the default chat model: ChatML
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n"
)


def write_catalog() -> None:
    """The catalog every contract test starts from: these two models only, BASE the default."""
    ModelEntry.objects.all().delete()
    base = ModelEntry.objects.create(
        model_id=BASE, aliases=["base"], display_name="Fake base", description="A base model.", size="1M",
        capabilities=["generate", "chat"], source="bundled", location="fake", load_at_startup=True,
        chat_template="{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant]",
        bos_token="<bos>", eos_token="<eos>",
    )
    chat = ModelEntry.objects.create(
        model_id=CHAT, display_name="Fake chat", capabilities=["chat"], source="bundled", location="fake",
        chat_template=CHATML, bos_token="", eos_token="<|im_end|>", chat_stop_sequences=["<|im_end|>"],
    )
    ServiceSettings(default_model=base, default_chat_model=chat).save()


def _installed(**limits):
    fake = FakeEngine()
    with fake.installed(**limits):
        write_catalog()
        yield fake
    # The usage of a failed or cancelled generation is recorded by a thread of its own: it must
    # be done before the test's database goes.
    for thread in threading.enumerate():
        if thread.name == "_record_usage":
            thread.join(timeout=10)


@pytest.fixture
def engine():
    """The fake engine of this test: scripted by the test, installed for it."""
    yield from _installed()


@pytest.fixture
def busy_engine():
    """A fake engine behind one generation at a time and no waiting place (a second one is refused)."""
    yield from _installed(max_active=1, max_queued=0)


class Api:
    """Calls as a client makes them, and the checks every API's answers share."""

    def __init__(self, client: AsyncClient):
        self.client = client

    async def post(self, path: str, body=None, **headers):
        """POST `body` as JSON (bytes: as they are, with the content type given, JSON unless said)."""
        if isinstance(body, bytes):
            content_type = headers.pop("content_type", "application/json")
            return await self.client.post(path, body, content_type=content_type, headers=headers)
        return await self.client.post(path, json.dumps(body or {}), content_type="application/json", headers=headers)

    async def stream(self, path: str, body: dict, **headers) -> tuple[object, list[Event], int]:
        """A streamed POST: the response, its events (framed as the SSE spec reads them) and its comments."""
        response = await self.post(path, body, **headers)
        assert response.status_code == 200, response.content
        assert response.streaming, "a stream must not be buffered into one body"
        body = b"".join([chunk async for chunk in response]).decode()
        events, comments = parse_events(body.split("\n"), lambda: 0)
        return response, events, comments

    async def read_then_leave(self, response, chunks: int) -> list[bytes]:
        """Read `chunks` chunks of a stream, then leave as a client that disconnects (the server cancels
        the response's task)."""
        received = []

        async def consume():
            async for chunk in response:
                received.append(chunk)

        task = asyncio.create_task(consume())
        async with asyncio.timeout(5):
            while len(received) < chunks:
                await asyncio.sleep(0.005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return received

    @staticmethod
    async def disable(model_id: str) -> None:
        """Disable a catalog entry, as the admin does (its signals tell the catalog in memory)."""
        entry = await ModelEntry.objects.aget(model_id=model_id)
        entry.enabled = False
        await sync_to_async(entry.save)()

    @staticmethod
    def error(response, status: int, code: str | None = None, field: str | None = None) -> dict:
        """The native API's error: its status, a JSON body {"error": {code, message, field?}}."""
        assert response.status_code == status, response.content
        assert response.headers["content-type"].startswith("application/json")
        error = response.json()["error"]
        assert error["message"]
        assert "Traceback" not in error["message"]
        if code:
            assert error["code"] == code, error
        if field:
            assert error.get("field") == field, error
        return error

    @staticmethod
    def openai_error(response, status: int, error_type: str, code: str | None = None, param: str | None = None):
        """OpenAI's error shape: {"error": {message, type, param, code}}, which its SDKs read by status."""
        assert response.status_code == status, response.content
        assert response.headers["content-type"].startswith("application/json")
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert error["message"] and error["type"] == error_type, error
        if code:
            assert error["code"] == code, error
        if param:
            assert error["param"] == param, error
        return error


@pytest.fixture
def api(engine):
    return Api(AsyncClient())


@pytest.fixture
def busy_api(busy_engine):
    return Api(AsyncClient())


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Users made and logged in here need no costly hash (the servers of tests/e2e keep the real one)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
