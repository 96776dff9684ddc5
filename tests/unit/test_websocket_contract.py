"""The WebSocket API's contract (/ws/generate/) in the test process: its messages and fields,
one generation at a time, cancel, errors that keep the connection open, API keys. Channels'
WebsocketCommunicator talks to the consumer, the fake engine answers for the model
(tests.support.fake_worker); a real client over a real socket is tested end to end (test_websocket)."""

import contextlib

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from access.services import create_api_key
from common.errors import EngineFailed
from generation.lifecycle import runtime
from generation.api.ws.routing import websocket_urlpatterns
from tests.support.fake_worker import Script
from tests.unit.conftest import BASE, CHAT

pytestmark = pytest.mark.django_db(transaction=True)

LONE_SURROGATE = '{"type": "generate", "id": "x", "prompt": "\\ud800"}'  # valid JSON, not valid Unicode


@contextlib.asynccontextmanager
async def connected(**options):
    """An open connection to /ws/generate/ (headers=..., subprotocols=...); closed after the block."""
    socket = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/generate/", **options)
    accepted, socket.subprotocol = await socket.connect(timeout=5)
    assert accepted
    try:
        yield socket
    finally:
        await socket.disconnect()


@pytest.fixture
async def socket(engine):
    async with connected() as socket:
        yield socket


async def run(socket, message: dict) -> tuple[list[dict], dict]:
    """Send one request; its delta messages and the message that ended it."""
    await socket.send_json_to(message)
    deltas = []
    while (reply := await socket.receive_json_from(timeout=5))["type"] == "delta":
        deltas.append(reply)
    return deltas, reply


async def test_generate_streams_deltas_then_done(socket, engine):
    engine.script(Script(tokens=(" the", " capital")))
    deltas, done = await run(socket, {"type": "generate", "id": "g1", "prompt": "The capital of France is"})
    assert deltas == [{"type": "delta", "id": "g1", "text": " the"}, {"type": "delta", "id": "g1", "text": " capital"}]
    assert done.pop("request_id").endswith(":g1")  # <connection id>:<message id>, as its log lines say
    assert done == {
        "type": "done", "id": "g1", "model": BASE, "finish_reason": "length", "tokens_generated": 2,
        "prompt_tokens": len("<bos>The capital of France is"),
    }
    assert engine.calls[0].keep_leading_whitespace


async def test_several_requests_in_sequence_on_one_connection(socket, engine):
    deltas, done = await run(socket, {"type": "chat", "id": 1, "messages": [{"role": "user", "content": "Hi"}]})
    assert "".join(delta["text"] for delta in deltas) == "Hello, world"
    assert done["model"] == CHAT and not engine.calls[0].keep_leading_whitespace
    for request_id in (2, 3):
        _, done = await run(socket, {"type": "generate", "id": request_id, "prompt": "Hello"})
        assert (done["type"], done["id"], done["tokens_generated"]) == ("done", request_id, 3)


@pytest.mark.parametrize(
    "message, code, field",
    [
        ("not json", "invalid_request", None),
        ("[1, 2]", "invalid_request", None),
        (LONE_SURROGATE, "invalid_request", None),
        ({"id": "x", "prompt": "hi"}, "invalid_request", "type"),
        ({"type": "dance", "id": "x"}, "invalid_request", "type"),
        ({"type": "generate", "id": "x", "prompt": "hi", "temperature": 9}, "invalid_request", "temperature"),
        ({"type": "generate", "id": "x", "prompt": ""}, "invalid_request", "prompt"),
        ({"type": "generate", "id": "x", "prompt": "hi", "top_k": 1e30}, "invalid_request", "top_k"),
        ({"type": "chat", "id": "x", "messages": [{"role": "wizard", "content": "hi"}]}, "invalid_request",
         "messages[0].role"),
        ({"type": "generate", "id": "x", "prompt": "hi", "model": "nobody/nothing"}, "model_not_found", "model"),
        ({"type": "generate", "id": "x", "prompt": "hi", "max_tokens": 5000}, "invalid_request", "max_tokens"),
        ({"type": "cancel", "id": "x"}, "invalid_request", None),
    ],
)
async def test_a_bad_message_gets_an_error_and_the_connection_stays_open(socket, engine, message, code, field):
    if isinstance(message, dict):
        await socket.send_json_to(message)
    else:
        await socket.send_to(text_data=message)
    reply = await socket.receive_json_from(timeout=5)
    assert reply["type"] == "error"
    assert reply["error"]["code"] == code and reply["error"]["message"]
    assert reply["error"].get("field") == field
    if isinstance(message, dict) and "id" in message:
        assert reply["id"] == message["id"]
    assert engine.calls == []
    _, done = await run(socket, {"type": "generate", "id": "after", "prompt": "Hello"})
    assert done["type"] == "done"


async def test_one_generation_at_a_time_and_cancel(socket, engine):
    engine.script(Script(tokens=("1",), hang=True))
    await socket.send_json_to({"type": "generate", "id": "long", "prompt": "1, 2,"})
    assert await socket.receive_json_from(timeout=5) == {"type": "delta", "id": "long", "text": "1"}
    await socket.send_json_to({"type": "generate", "id": "second", "prompt": "Hello"})
    reply = await socket.receive_json_from(timeout=5)
    assert (reply["type"], reply["id"]) == ("error", "second") and "running" in reply["error"]["message"]
    await socket.send_json_to({"type": "cancel"})
    assert await socket.receive_json_from(timeout=5) == {"type": "cancelled", "id": "long"}
    assert engine.calls[0].cancelled and engine.calls[0].released
    assert len(engine.calls) == 1  # the second request never reached the engine
    _, done = await run(socket, {"type": "generate", "id": "next", "prompt": "Hello"})
    assert done["type"] == "done"


async def test_a_closed_socket_cancels_its_generation(engine):
    engine.script(Script(tokens=("1",), hang=True))
    async with connected() as socket:
        await socket.send_json_to({"type": "generate", "id": "long", "prompt": "1, 2,"})
        assert (await socket.receive_json_from(timeout=5))["type"] == "delta"
    assert engine.calls[0].cancelled and engine.calls[0].released
    assert runtime.current().limiter.active == 0


async def test_an_engine_failure_is_an_error_message_with_the_requests_id(socket, engine):
    engine.script(Script(tokens=("a",), failure=EngineFailed("The engine failed: boom")))
    deltas, reply = await run(socket, {"type": "generate", "id": "f", "prompt": "x"})
    assert len(deltas) == 1
    assert reply.pop("request_id").endswith(":f")
    error = {"code": "engine_error", "message": "The engine failed: boom"}
    assert reply == {"type": "error", "id": "f", "error": error}


async def test_overload_is_an_overloaded_error(busy_engine):
    busy_engine.script(Script(hang=True))
    async with connected() as first, connected() as second:
        await first.send_json_to({"type": "generate", "id": "1", "prompt": "x"})
        await first.receive_json_from(timeout=5)
        _, reply = await run(second, {"type": "generate", "id": "2", "prompt": "x"})
        assert reply["type"] == "error" and reply["error"]["code"] == "overloaded"


async def test_without_a_required_key_the_connection_is_told_then_closed_with_4401(engine, settings):
    settings.LLM_REQUIRE_API_KEY = True
    async with connected() as socket:
        reply = await socket.receive_json_from(timeout=5)
        assert reply["type"] == "error" and reply["error"]["code"] == "unauthorized"
        closed = await socket.receive_output(timeout=5)
        assert (closed["type"], closed["code"]) == ("websocket.close", 4401)


async def test_a_key_in_the_header_or_the_subprotocol_is_taken_and_never_echoed(engine, settings):
    settings.LLM_REQUIRE_API_KEY = True
    _, secret = await sync_to_async(create_api_key)(name="ws")
    async with connected(headers=[(b"authorization", f"Bearer {secret}".encode())]) as socket:
        _, done = await run(socket, {"type": "generate", "id": "1", "prompt": "x"})
        assert done["type"] == "done"
    async with connected(subprotocols=["llm.v1", f"bearer.{secret}"]) as socket:
        assert socket.subprotocol == "llm.v1"
        _, done = await run(socket, {"type": "generate", "id": "1", "prompt": "x"})
        assert done["type"] == "done"


async def test_tokens_that_arrive_together_are_still_a_message_each(socket, engine):
    tokens = ("One", ",", " two", ",", " three")
    engine.script(Script(tokens=tokens), Script(tokens=tokens, together=3))
    alone = await run(socket, {"type": "generate", "id": "g", "prompt": "Count:"})
    together = await run(socket, {"type": "generate", "id": "g", "prompt": "Count:"})
    assert [delta["text"] for delta in alone[0]] == list(tokens)
    assert together[0] == alone[0]
    assert {**together[1], "request_id": None} == {**alone[1], "request_id": None}
