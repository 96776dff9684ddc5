"""Domain errors of the generation service.

Each error knows its HTTP status and a stable machine-readable code; both APIs (native
and OpenAI-compatible) and the WebSocket consumer map them to their own error shapes.
"""


class ServiceError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after = retry_after


class InvalidRequest(ServiceError):
    status = 400
    code = "invalid_request"


class PromptTooLong(InvalidRequest):
    code = "context_length_exceeded"


class ModelNotFound(ServiceError):
    status = 404
    code = "model_not_found"


class ModelNotAllowed(ServiceError):
    status = 403
    code = "model_not_allowed"


class Overloaded(ServiceError):
    status = 429
    code = "overloaded"


class ModelUnavailable(ServiceError):
    """The model exists and is allowed, but its engine could not be loaded."""

    status = 503
    code = "model_unavailable"


class EngineFailed(ServiceError):
    status = 503
    code = "engine_error"


class Unauthorized(ServiceError):
    """No API key where one is required, or a key that is unknown or revoked."""

    status = 401
    code = "unauthorized"


class RateLimited(ServiceError):
    """An API key is over its requests or tokens per minute; `retry_after` says when the window resets."""

    status = 429
    code = "rate_limited"


class ShuttingDown(ServiceError):
    """The server is draining before it stops; other replicas can serve the request."""

    status = 503
    code = "shutting_down"


def error_from_code(code: str, message: str, *, field: str | None = None) -> ServiceError:
    """The domain error of this `code` (the inverse of `error.code`), for one that crossed a
    process boundary as data; an unknown code is an internal error."""
    kinds = [ServiceError]
    for kind in kinds:
        if kind.code == code:
            return kind(message, field=field)
        kinds.extend(kind.__subclasses__())
    return ServiceError(message, field=field)
