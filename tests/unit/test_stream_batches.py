"""Tokens that arrive together leave together: a worker's frame carries every message it had
ready (`Worker.send`), the web side hands a frame over with one call into the event loop
(`hand_over`), a stream takes what has arrived in one batch (`GenerationStream.batches`), and
each API writes a batch's events at once. The events themselves (their order, their content)
are those of the tokens one by one, and nothing waits for a token that has not come.

The real worker and server stream through this path in the e2e tests (test_native_api,
test_openai_api, test_engine_workers)."""

import asyncio
import json
import queue
import threading

import pytest

from common.errors import EngineFailed
from generation.engine import protocol
from generation.engine.streams import GenerationStream, OpenGeneration, add, hand_over
from generation.engine.types import Finished, TextDelta
from generation.engine.worker import Worker
from tests.support.fake_worker import Script
from tests.support.sse_client import parse_events
from tests.unit.conftest import BASE, CHAT

TOKENS = ("One", ",", " two", ",", " three")


# --- the API's events: the same, batched or not ---------------------------------------------------------


def without_ids(data: str) -> object:
    """An event's JSON without what differs from response to response (ids, times), or its text."""
    try:
        body = json.loads(data)
    except json.JSONDecodeError:
        return data
    if isinstance(body, dict):
        for varying in ("id", "created", "created_at", "item_id", "response", "item"):
            body.pop(varying, None)
    return body


STREAMS = {
    "native": ("/api/generate/stream", {"prompt": "Count:", "max_tokens": 5}),
    "native chat": ("/api/chat/stream", {"messages": [{"role": "user", "content": "Count"}], "max_tokens": 5}),
    "completions": (
        "/v1/completions",
        {"model": BASE, "prompt": "Count:", "max_tokens": 5, "stream": True, "logprobs": 2,
         "stream_options": {"include_usage": True}},
    ),
    "chat completions": (
        "/v1/chat/completions",
        {"model": CHAT, "messages": [{"role": "user", "content": "Count"}], "max_tokens": 5, "stream": True,
         "logprobs": True, "top_logprobs": 2, "stream_options": {"include_usage": True}},
    ),
    "responses": ("/v1/responses", {"model": CHAT, "input": "Count", "max_output_tokens": 5, "stream": True}),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("api_name", STREAMS)
async def test_tokens_that_arrive_together_give_the_same_events_in_fewer_writes(api, engine, api_name):
    path, body = STREAMS[api_name]
    streams = {}
    for together in (1, 3):
        engine.script(Script(tokens=TOKENS, together=together))
        response = await api.post(path, body)
        assert response.status_code == 200, response.content
        writes = [chunk async for chunk in response]
        events, comments = api_events(writes)
        streams[together] = (len(writes), [(event.event, without_ids(event.data)) for event in events], comments)
    (writes_alone, events_alone, comments_alone), (writes_together, events_together, comments_together) = (
        streams[1], streams[3]
    )
    assert events_together == events_alone  # an event per token still, in the same order
    assert comments_alone == comments_together == 0
    # Five tokens in two batches, [3] then [2 + the end]: two writes for five events of deltas.
    assert writes_together == writes_alone - 3


def api_events(writes: list[bytes]):
    return parse_events(b"".join(writes).decode().split("\n"), lambda: 0)


@pytest.mark.django_db(transaction=True)
async def test_a_failure_after_tokens_that_arrived_with_it_streams_them_first(api, engine):
    engine.script(Script(tokens=("a", "b"), together=2, failure=EngineFailed("The engine failed: boom")))
    response = await api.post("/api/generate/stream", {"prompt": "x", "max_tokens": 5})
    events, _ = api_events([chunk async for chunk in response])
    assert [(event.event, event.data) for event in events][:2] == [("message", "a"), ("message", "b")]
    assert events[-1].event == "error" and "boom" in events[-1].data


# --- GenerationStream: a batch is what has arrived --------------------------------------------------------


def stream_of(events: asyncio.Queue, arrived=()) -> tuple[GenerationStream, queue.SimpleQueue]:
    outbox = queue.SimpleQueue()
    return GenerationStream(outbox, 7, events, protocol.Admitted(7, 3, 16), list(arrived)), outbox


async def test_a_single_token_is_never_held_back_waiting_for_more():
    events = asyncio.Queue()
    stream, outbox = stream_of(events)
    batches = stream.batches()
    events.put_nowait([TextDelta("a")])
    assert await asyncio.wait_for(anext(batches), 1) == [TextDelta("a")]
    following = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0.05)
    assert not following.done()  # nothing more came: nothing more is given
    events.put_nowait([TextDelta("b")])
    assert await asyncio.wait_for(following, 1) == [TextDelta("b")]
    await batches.aclose()
    assert outbox.get_nowait() == protocol.Cancel(7)  # left before the end: cancelled


async def test_what_arrived_before_the_stream_looks_is_one_batch_in_order():
    events = asyncio.Queue()
    stream, outbox = stream_of(events, arrived=[TextDelta("a")])  # came in the frame of the Admitted
    events.put_nowait([TextDelta("b")])
    events.put_nowait([TextDelta("c"), Finished("length", 3, 3)])
    assert [batch async for batch in stream.batches()] == [
        [TextDelta("a"), TextDelta("b"), TextDelta("c"), Finished("length", 3, 3)]
    ]
    assert outbox.empty()  # it ended: no cancel


async def test_an_error_comes_after_the_tokens_that_arrived_before_it():
    events = asyncio.Queue()
    stream, _ = stream_of(events)
    events.put_nowait([TextDelta("a"), EngineFailed("boom")])
    received = []
    with pytest.raises(EngineFailed, match="boom"):
        async for batch in stream.batches():
            received.append(batch)
    assert received == [[TextDelta("a")]]


class RecordingLoop:
    def __init__(self):
        self.calls = []

    def call_soon_threadsafe(self, callback, *args):
        self.calls.append((callback, args))


def test_a_frame_wakes_each_event_loop_once_whatever_it_carries():
    loop, other_loop = RecordingLoop(), RecordingLoop()
    first, second, third = (OpenGeneration(target, asyncio.Queue(), lambda: None)
                            for target in (loop, loop, other_loop))
    arrived = {}
    for generation, item in [(first, TextDelta("a")), (second, TextDelta("x")), (first, TextDelta("b")),
                             (third, TextDelta("z")), (None, TextDelta("forgotten"))]:
        add(arrived, generation, item)
    hand_over(arrived)
    assert (len(loop.calls), len(other_loop.calls)) == (1, 1)
    for callback, args in loop.calls + other_loop.calls:
        callback(*args)
    assert first.events.get_nowait() == [TextDelta("a"), TextDelta("b")]
    assert second.events.get_nowait() == [TextDelta("x")]
    assert third.events.get_nowait() == [TextDelta("z")]


# --- the worker: one frame for what is ready, no message waiting ------------------------------------------


class SlowConnection:
    """A channel whose writes of the first frame wait until the test lets them go."""

    def __init__(self):
        self.frames = []
        self.writing = threading.Event()
        self.go_on = threading.Event()

    def send(self, frame):
        self.writing.set()
        self.go_on.wait(5)
        self.frames.append(frame)


def test_the_worker_sends_what_is_ready_meanwhile_in_one_frame_and_holds_nothing_back():
    connection = SlowConnection()
    worker = Worker(engine=None, connection=connection)
    first = threading.Thread(target=worker.send, args=(protocol.Output(1, TextDelta("a")),))
    first.start()
    assert connection.writing.wait(5)  # its frame is being written: the others leave theirs and go on
    worker.send(protocol.Output(2, TextDelta("x")))
    worker.send(protocol.Output(1, TextDelta("b")))
    assert connection.frames == []
    connection.go_on.set()
    first.join(5)
    assert connection.frames == [
        (protocol.Output(1, TextDelta("a")),),
        (protocol.Output(2, TextDelta("x")), protocol.Output(1, TextDelta("b"))),
    ]
    worker.send(protocol.Released(1))  # alone: written at once, in a frame of its own
    assert connection.frames[-1] == (protocol.Released(1),)
    worker.flush()  # nothing left
    assert len(connection.frames) == 3
