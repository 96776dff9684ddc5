"""Every error a client can get, described once and rendered in each API's shape.

Domain errors (common.errors) and DRF's own (validation, parse, media type,
authentication) become an `ApiError`; the native API renders it as
`{"error": {"code", "message", "field"?}}`, the OpenAI-compatible API in OpenAI's shape
(generation.api.openai.views). No view builds an error response by hand.
"""

from dataclasses import dataclass
from dataclasses import field as dataclass_field

from django.http import JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from access.authentication import WWW_AUTHENTICATE
from common.errors import ServiceError, Unauthorized


@dataclass(frozen=True)
class ApiError:
    status: int
    code: str
    message: str
    field: str | None = None
    headers: dict[str, str] = dataclass_field(default_factory=dict)


def error_body(code: str, message: str, field: str | None = None) -> dict:
    error = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


def first_validation_error(detail, path: str = "") -> tuple[str, str]:
    """The first (field, message) of a DRF ValidationError detail, as `messages[0].role`."""
    if isinstance(detail, dict):
        key, value = next(iter(detail.items()))
        if isinstance(key, int):
            return first_validation_error(value, f"{path}[{key}]")
        if key == "non_field_errors":
            return first_validation_error(value, path)
        return first_validation_error(value, f"{path}.{key}" if path else str(key))
    if isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, dict) and item:
                return first_validation_error(item, f"{path}[{index}]")
            if item and not isinstance(item, dict):
                return first_validation_error(item, path)
        return path, "Invalid value."
    return path, str(detail)


def service_api_error(exc: ServiceError) -> ApiError:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE  # RFC 6750: what credentials to send
    return ApiError(exc.status, exc.code, exc.message, exc.field, headers)


def describe_exception(exc, context) -> ApiError | None:
    """The ApiError for an exception raised in a view; None for a real crash."""
    if isinstance(exc, ServiceError):
        return service_api_error(exc)
    if isinstance(exc, drf_exceptions.ValidationError):
        field, message = first_validation_error(exc.detail)
        return ApiError(400, "invalid_request", message, field or None)
    response = drf_exception_handler(exc, context)  # DRF's status and headers (WWW-Authenticate, Retry-After)
    if response is None:
        return None
    headers = {name: value for name, value in response.items() if name.lower() != "content-type"}
    return ApiError(response.status_code, exc.default_code, str(exc.detail), None, headers)


def error_response(body: dict, error: ApiError) -> JsonResponse:
    """`body` (the error in one API's shape) with the error's status and headers."""
    response = JsonResponse(body, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def render_native(error: ApiError) -> JsonResponse:
    return error_response(error_body(error.code, error.message, error.field), error)


OPENAI_ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def openai_error_body(error: ApiError) -> dict:
    """OpenAI's error shape, which its SDKs turn into their error classes by status code."""
    if error.status >= 500:
        error_type = "server_error"
    else:
        error_type = OPENAI_ERROR_TYPES.get(error.status, "invalid_request_error")
    return {"error": {"message": error.message, "type": error_type, "param": error.field, "code": error.code}}


def render_openai(error: ApiError) -> JsonResponse:
    return error_response(openai_error_body(error), error)


def error_body_for_path(path: str, error: ApiError) -> dict:
    """The error in the shape of the API whose URL was called: OpenAI's under /v1/, else the native one."""
    if path.startswith("/v1/"):
        return openai_error_body(error)
    return error_body(error.code, error.message, error.field)


def render_for_path(path: str, error: ApiError) -> JsonResponse:
    """An error raised outside the API views (middleware, unknown URLs), in the called API's shape."""
    return error_response(error_body_for_path(path, error), error)


def exception_handler(exc, context):
    error = describe_exception(exc, context)
    return render_native(error) if error is not None else None
