"""JSON answers for what fails before or around a view: oversized bodies and crashes."""

import logging

from django.conf import settings
from django.db import DatabaseError

from generation.api.errors import ApiError, render_for_path
from inference_service.middleware import HybridMiddleware

logger = logging.getLogger(__name__)


class JSONErrorMiddleware(HybridMiddleware):
    """413 for a body over LLM_MAX_REQUEST_BYTES; 503 when the database is unreachable;
    a JSON 500 (never a trace) for any other crash."""

    def _too_large(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            message = f"The request body is {length} bytes; the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE}."
            return render_for_path(request.path, ApiError(413, "request_too_large", message))
        return None

    def call(self, request):
        return self._too_large(request) or self.get_response(request)

    async def __acall__(self, request):
        return self._too_large(request) or await self.get_response(request)

    def process_exception(self, request, exception):
        if request.path.startswith("/admin/"):
            return None  # the admin keeps Django's own error pages
        if isinstance(exception, DatabaseError):
            logger.error("database error on %s: %s", request.path, exception)
            return render_for_path(request.path, ApiError(503, "database_unavailable", "The database is unavailable."))
        logger.exception("unhandled error on %s", request.path)
        return render_for_path(request.path, ApiError(500, "internal_error", "Internal server error."))
