"""Server-Sent Events: framing, keep-alive comments and the streaming response."""

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable

from django.http import StreamingHttpResponse

from common.errors import ServiceError

logger = logging.getLogger(__name__)

KEEPALIVE = object()
KEEPALIVE_COMMENT = b": keep-alive\n\n"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def sse_event(data: str, *, event: str | None = None) -> bytes:
    """One event. Data with line breaks becomes several `data:` lines, which a client
    joins back with "\\n" (the SSE spec has no way to tell "\\r\\n" from "\\n")."""
    lines = [f"event: {event}"] if event else []
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return ("\n".join(lines) + "\n\n").encode()


async def with_keepalive(events: AsyncIterator, interval: float) -> AsyncIterator:
    """The items of `events`, with KEEPALIVE yielded after each `interval` of silence.

    One `__anext__` of the source is pending at a time, in a task kept across keep-alive
    timeouts (cancelling it would end the source); the next is asked for once an item is taken.
    A task per item is the price of a timeout that cancels nothing: the variants without one (a
    pump task per stream; shield and asyncio.timeout) measured no cheaper, interleaved.
    """
    pending = asyncio.ensure_future(anext(events))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield KEEPALIVE
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            yield item
            pending = asyncio.ensure_future(anext(events))
    finally:
        if not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        await events.aclose()


async def ending_in_error_events(
    body: AsyncIterator[bytes], render_error: Callable[[ServiceError], bytes]
) -> AsyncIterator[bytes]:
    """The body of a stream whose response has started: any exception in it becomes the
    API's error event, and the stream ends cleanly.

    An exception escaping a streamed body would reach the server after the status line
    went out (Daphne then stops serving that process properly); a client must get the
    documented error event instead.
    """
    try:
        async for chunk in body:
            yield chunk
    except ServiceError as exc:
        yield render_error(exc)
    except Exception:
        logger.exception("a stream failed")
        yield render_error(ServiceError("Internal server error."))


def event_stream_response(
    body: AsyncIterator[bytes], render_error: Callable[[ServiceError], bytes]
) -> StreamingHttpResponse:
    """A Server-Sent Events response; `render_error` frames a failure as the API's error event."""
    response = StreamingHttpResponse(
        ending_in_error_events(body, render_error), content_type="text/event-stream; charset=utf-8"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx and similar proxies: do not buffer
    return response
