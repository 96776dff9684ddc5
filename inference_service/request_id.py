"""A request id on every log line and in every response.

The id comes from the client's X-Request-ID when it sends a sensible one (so that a
proxy's or caller's id follows the request through), else a fresh one; it is returned in
the X-Request-ID response header and added to every log record written while the request
is handled, its streamed response included.
"""

import asyncio
import logging
import time

from common.log_context import current_request_id, request_id_from
from generation.core.observation import CLIENT_CLOSED
from inference_service.middleware import HybridMiddleware

HEADER = "X-Request-ID"
QUIET_PATHS = ("/health/", "/metrics")

access_logger = logging.getLogger("inference_service.access")


class RequestIdMiddleware(HybridMiddleware):
    """Sets the request id, returns it in a header, and logs one access line per request."""

    def _begin(self, request) -> float:
        # Not reset afterwards: each request runs in its own task (a copy of the context),
        # and a streamed response is still being sent after this middleware returns.
        current_request_id.set(request_id_from(request.headers.get(HEADER)))
        return time.perf_counter()

    def _end(self, request, response, started: float):
        response[HEADER] = current_request_id.get()
        self._log(request, response.status_code, started)
        return response

    def _log(self, request, status: int, started: float) -> None:
        # Probes and scrapes come every few seconds: logged only at DEBUG.
        level = logging.DEBUG if request.path.startswith(QUIET_PATHS) else logging.INFO
        access_logger.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            status,
            extra={
                "method": request.method,
                "path": request.path,
                "status": status,
                # Until the response starts: a stream's length is the generation's, logged by the core.
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )

    def call(self, request):
        started = self._begin(request)
        return self._end(request, self.get_response(request), started)

    async def __acall__(self, request):
        started = self._begin(request)
        try:
            response = await self.get_response(request)
        except asyncio.CancelledError:
            # The client went away before the answer began (e.g. while its request was queued).
            self._log(request, int(CLIENT_CLOSED), started)
            raise
        return self._end(request, response, started)
