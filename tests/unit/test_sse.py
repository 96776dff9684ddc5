"""SSE framing, and the native stream's error event, with a fake generation (HTTP layer only;
the real engine's streams are tested in test_native_api)."""

import asyncio
import json

from common.errors import EngineFailed
from generation.engine.types import Finished, TextDelta
from generation.api.native.views import native_error_event, native_sse
from generation.api.sse import KEEPALIVE, ending_in_error_events, sse_event, with_keepalive
from tests.support.sse_client import parse_events


def test_text_with_line_breaks_spans_data_lines_and_parses_back():
    for text in ["plain", " leading space", "a\nb", "\n", "x\n\ny\n", "", "trailing\n", "crlf\r\nline"]:
        events, _ = parse_events(sse_event(text).decode().split("\n"), lambda: 0)
        assert [event.data for event in events] == [text.replace("\r\n", "\n")]


def test_named_event():
    assert sse_event('{"a": 1}', event="done") == b'event: done\ndata: {"a": 1}\n\n'


class FakeGeneration:
    model_id = "fake/model"
    prompt_tokens = 3
    client_stops = False

    def __init__(self, events, delay=0.0):
        self._events = events
        self._delay = delay

    async def batches(self):
        for event in self._events:
            await asyncio.sleep(self._delay)
            if isinstance(event, Exception):
                raise event
            yield [event]


async def collect(generation):
    body = ending_in_error_events(native_sse(generation), native_error_event)  # as the native views frame it
    return b"".join([chunk async for chunk in body]).decode()


async def test_a_failure_after_the_stream_started_is_an_error_event():
    body = await collect(FakeGeneration([TextDelta("Hello"), EngineFailed("The engine failed: boom")]))
    events, _ = parse_events(body.split("\n"), lambda: 0)
    assert [event.event for event in events] == ["message", "error"]
    assert json.loads(events[1].data) == {"error": {"code": "engine_error", "message": "The engine failed: boom"}}


async def test_done_event_carries_the_counts():
    body = await collect(FakeGeneration([TextDelta("a"), Finished("length", 3, 1)]))
    events, _ = parse_events(body.split("\n"), lambda: 0)
    assert json.loads(events[-1].data) == {
        "model": "fake/model", "finish_reason": "length", "tokens_generated": 1, "prompt_tokens": 3,
    }


async def test_each_api_names_the_engines_finish_reason_at_its_edge():
    """The engine's "stop" is the native API's "eos" unless the request set stop sequences; OpenAI's "stop"."""
    from generation.api.openai.views import openai_finish_reason

    for engine_reason, client_stops, native, openai in [
        ("stop", False, "eos", "stop"), ("stop", True, "stop", "stop"), ("length", False, "length", "length"),
    ]:
        generation = FakeGeneration([TextDelta("a"), Finished(engine_reason, 3, 1)])
        generation.client_stops = client_stops
        events, _ = parse_events((await collect(generation)).split("\n"), lambda: 0)
        assert json.loads(events[-1].data)["finish_reason"] == native
        assert openai_finish_reason(Finished(engine_reason, 3, 1)) == openai


async def test_keepalive_during_silence_and_prompt_close():
    async def slow():
        await asyncio.sleep(0.25)
        yield "item"

    items = [item async for item in with_keepalive(slow(), 0.1)]
    assert items[-1] == "item"
    assert items.count(KEEPALIVE) >= 1


async def test_closing_the_stream_closes_the_source():
    closed = asyncio.Event()

    async def endless():
        try:
            while True:
                await asyncio.sleep(0.01)
                yield "x"
        finally:
            closed.set()

    stream = with_keepalive(endless(), 1)
    await anext(stream)
    await stream.aclose()
    assert closed.is_set()


def test_any_exception_in_a_started_stream_becomes_the_error_event():
    async def failing_body():
        yield b"data: first\n\n"
        raise OverflowError("int too big to convert")

    async def chunks_of_failing_body():
        return [chunk async for chunk in ending_in_error_events(failing_body(), native_error_event)]

    chunks = asyncio.run(chunks_of_failing_body())
    assert chunks[0] == b"data: first\n\n"
    events, _ = parse_events(chunks[1].decode().split("\n"), lambda: 0)
    assert events[0].event == "error"
    assert json.loads(events[0].data) == {"error": {"code": "internal_error", "message": "Internal server error."}}
