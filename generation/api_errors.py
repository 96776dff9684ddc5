"""One JSON error shape for the native API: {"error": {"code", "message", "field"?}}.

Domain errors (generation.errors) and DRF's own (validation, parse, media type) are all
mapped here, so no view builds an error response by hand.
"""

from django.http import JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from generation.errors import ServiceError


def error_body(code: str, message: str, field: str | None = None) -> dict:
    error = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


def service_error_response(exc: ServiceError) -> JsonResponse:
    response = JsonResponse(error_body(exc.code, exc.message, exc.field), status=exc.status)
    if exc.retry_after is not None:
        response["Retry-After"] = str(exc.retry_after)
    return response


def _first_validation_error(detail, path: str = "") -> tuple[str, str]:
    """The first (field, message) of a DRF ValidationError detail, as `messages[0].role`."""
    if isinstance(detail, dict):
        key, value = next(iter(detail.items()))
        if isinstance(key, int):
            return _first_validation_error(value, f"{path}[{key}]")
        if key == "non_field_errors":
            return _first_validation_error(value, path)
        return _first_validation_error(value, f"{path}.{key}" if path else str(key))
    if isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, dict) and item:
                return _first_validation_error(item, f"{path}[{index}]")
            if item and not isinstance(item, dict):
                return _first_validation_error(item, path)
        return path, "Invalid value."
    return path, str(detail)


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        return service_error_response(exc)
    if isinstance(exc, drf_exceptions.ValidationError):
        field, message = _first_validation_error(exc.detail)
        return Response(error_body("invalid_request", message, field or None), status=400)
    response = drf_exception_handler(exc, context)
    if response is not None:
        code = getattr(exc, "default_code", "error")
        response.data = error_body(code, str(getattr(exc, "detail", exc)))
    return response
