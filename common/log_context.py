"""The id of the request under way, on every log line written while it is handled.

HTTP requests get theirs from inference_service.request_id (the client's X-Request-ID or
a fresh one); a WebSocket connection gets one at its handshake, and each of its requests
`<connection id>:<message id>`. It lives in a context variable: each request and each
WebSocket generation runs in a task of its own, with a copy of the context.
"""

import contextvars
import logging
import re
import uuid

# Ids are copied into logs and headers: accept only short, printable, unambiguous ones.
VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def request_id_from(header: str | None) -> str:
    """The client's id when it is a sensible one (so that it follows the request through), else a fresh one."""
    if header and VALID_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (a handler filter, so library loggers get it too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        return True
