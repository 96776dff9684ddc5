"""Server-Sent Events: framing, keep-alive comments and the streaming response."""

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

from django.http import StreamingHttpResponse

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
    """The items of `events`, with KEEPALIVE yielded after each `interval` of silence."""
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


def event_stream_response(body: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx and similar proxies: do not buffer
    return response
