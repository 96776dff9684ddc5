"""What the OpenAPI schema says of every API operation: its documented errors and their headers,
valid examples, Server-Sent Events as a schema, and `operation`, which documents an operation.

The error shape here is the native one (`{"error": {"code", "message", "field"?}}`), which the
native API, the tokenizer and the WebSocket's error messages share; the OpenAI-compatible API
documents its own shape with the same `error_responses`.
"""

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.schemas.inspectors import DefaultSchema

ERROR_DESCRIPTIONS = {
    400: "Invalid JSON or parameter: out of range, an empty prompt or messages, `max_tokens` over the limit, "
    "a prompt longer than the model's context or the API key's tokens per minute.",
    401: "No API key where LLM_REQUIRE_API_KEY is on, or a key that is unknown or revoked.",
    403: "The model exists but is not allowed (disabled, outside LLM_ALLOWED_MODELS or the API key's models).",
    404: "No such model.",
    413: "Request body over LLM_MAX_REQUEST_BYTES.",
    415: "Content type other than application/json.",
    429: "Too many generations in flight (`overloaded`), or the API key is over a limit (`rate_limited`).",
    503: "The model could not be loaded, the engine failed, or the database is unavailable.",
}


def error_responses(serializer, statuses, descriptions=None) -> dict:
    """The documented errors of an operation, in its API's error shape."""
    descriptions = {**ERROR_DESCRIPTIONS, **(descriptions or {})}
    return {status: OpenApiResponse(serializer, description=descriptions[status]) for status in statuses}


GENERATION_ERRORS = (400, 401, 403, 404, 413, 415, 429, 503)
LISTING_ERRORS = (401, 503)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(required=False)


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


# The errors of an operation that takes a model's request, in the native shape.
ERROR_RESPONSES = error_responses(ErrorSerializer, GENERATION_ERRORS)

# Headers of the error responses, on every API operation.
ERROR_HEADERS = [
    OpenApiParameter(
        "Retry-After",
        int,
        location=OpenApiParameter.HEADER,
        response=[429],
        required=True,
        description="Seconds to wait before retrying.",
    ),
    OpenApiParameter(
        "WWW-Authenticate",
        str,
        location=OpenApiParameter.HEADER,
        response=[401],
        required=True,
        description='`Bearer realm="api"`: send `Authorization: Bearer <key>`.',
    ),
]


def example_max_tokens(tokens: int) -> int:
    """`max_tokens` in an example, within this process's limit: an example must be valid."""
    return min(tokens, settings.LLM_MAX_TOKENS_LIMIT)


# --- Server-Sent Events (for the OpenAPI schema) ------------------------------------------


class EventStreamSerializer(serializers.Serializer):
    """Schema only: one Server-Sent Event of a `text/event-stream` response.

    OpenAPI 3.0 has no way to describe a stream, so the schema of a `text/event-stream`
    response is read (by OpenAPI 3.2's convention, and by schemathesis) as the schema of each
    event: `{event, data, id?, retry?}`, `event` being "message" when the stream names none.
    `events` lists the kinds of event: (event name, description, payload serializers). The
    `data` of an event with payloads is JSON of one of their shapes, which the schema says with
    `x-contentMediaType` and `x-contentSchema` (JSON Schema's contentMediaType and
    contentSchema, which OpenAPI 3.0 lacks).
    """

    events: tuple[tuple[str, str, tuple], ...] = ()


class EventStreamSchema(OpenApiSerializerExtension):
    target_class = EventStreamSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        variants = []
        for name, description, payloads in self.target.events:
            data = {"type": "string", "description": description}
            if payloads:
                refs = [auto_schema.resolve_serializer(payload, direction).ref for payload in payloads]
                data["x-contentMediaType"] = "application/json"
                data["x-contentSchema"] = refs[0] if len(refs) == 1 else {"oneOf": refs}
            variants.append(
                {
                    "type": "object",
                    "properties": {
                        # Wrapped in allOf, so that drf-spectacular's hook leaves the enum inline.
                        "event": {"allOf": [{"type": "string", "enum": [name]}]},
                        "data": data,
                        "id": {"type": "string"},
                        "retry": {"type": "integer"},
                    },
                    # A stream that names no event sends "message".
                    "required": ["data"] if name == "message" else ["event", "data"],
                }
            )
        return variants[0] if len(variants) == 1 else {"oneOf": variants}


def operation(*, responses: dict, errors: dict, parameters=(), examples=(), **schema):
    """@extend_schema of an API operation: its `responses`, then its documented `errors` (of
    error_responses), and its `parameters` then the errors' headers.

    On a view class, it documents the view's methods, with its `request_serializer` as their request.
    """

    def decorate(view):
        kwargs = {
            **schema,
            "responses": {**responses, **errors},
            "parameters": [*parameters, *ERROR_HEADERS],
            "examples": list(examples),
        }
        if isinstance(view, type):
            if getattr(view, "request_serializer", None) is not None:
                kwargs.setdefault("request", view.request_serializer)
            # drf-spectacular builds a class's annotation on that of its annotated parent, adding
            # their parameters and examples together: each view class starts from the default.
            view.schema = DefaultSchema()
        return extend_schema(**kwargs)(view)

    return decorate


def json_or_stream(json_response, json_description: str, stream_event, stream_description: str) -> dict:
    """The 200 responses of an operation that answers JSON, or Server-Sent Events with `stream: true`."""
    return {
        (200, "application/json"): OpenApiResponse(json_response, description=json_description),
        (200, "text/event-stream"): OpenApiResponse(stream_event, description=stream_description),
    }
