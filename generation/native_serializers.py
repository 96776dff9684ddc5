"""Request and response schemas of the native API (/api/generate, /api/chat).

The request serializers validate; the others only describe responses in the OpenAPI schema,
which tests/test_schema_fuzz.py holds to what the server really does.
"""

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from rest_framework import serializers

from catalog.sampling_ranges import (
    REPETITION_PENALTY,
    SEED,
    STOP_SEQUENCE_MAX_CHARS,
    TEMPERATURE,
    TOP_K,
    TOP_P,
)

# DRF refuses a NUL character in any CharField ("Null characters are not allowed.").
NO_NUL_PATTERN = "^[^\\u0000]*$"


class TextField(serializers.CharField):
    """A string of a request; the schema says that it holds no NUL character."""


class TextFieldSchema(OpenApiSerializerFieldExtension):
    target_class = TextField

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {**schema, "pattern": NO_NUL_PATTERN}


class MaxTokensField(serializers.IntegerField):
    """`max_tokens`: at least 1; the ceiling is checked by the generation core, against the
    smaller of LLM_MAX_TOKENS_LIMIT and the admin's limit, with a message that names it."""

    def __init__(self, **kwargs):
        super().__init__(required=False, min_value=1, **kwargs)


class MaxTokensFieldSchema(OpenApiSerializerFieldExtension):
    """The schema shows this process's LLM_MAX_TOKENS_LIMIT as the maximum (read when the schema is served)."""

    target_class = MaxTokensField

    def map_serializer_field(self, auto_schema, direction):
        return {
            "type": "integer",
            "minimum": 1,
            "maximum": settings.LLM_MAX_TOKENS_LIMIT,
            "description": "Tokens to generate at most; default: the model's or the service's. Over the limit "
            f"(LLM_MAX_TOKENS_LIMIT, {settings.LLM_MAX_TOKENS_LIMIT} here, or the admin's lower limit) is a 400.",
        }


class SamplingSerializer(serializers.Serializer):
    # min_length: the schema's minLength (an empty string is refused as blank before it applies).
    model = TextField(
        required=False,
        allow_blank=False,
        min_length=1,
        max_length=200,
        help_text="Catalog id; default model if omitted.",
    )
    temperature = serializers.FloatField(required=False, min_value=TEMPERATURE[0], max_value=TEMPERATURE[1])
    top_p = serializers.FloatField(required=False, min_value=TOP_P[0], max_value=TOP_P[1])
    top_k = serializers.IntegerField(required=False, min_value=TOP_K[0], max_value=TOP_K[1])
    max_tokens = MaxTokensField()
    stop = serializers.ListField(
        child=TextField(allow_blank=False, trim_whitespace=False, min_length=1, max_length=STOP_SEQUENCE_MAX_CHARS),
        required=False,
        max_length=8,
    )
    seed = serializers.IntegerField(
        required=False, min_value=SEED[0], max_value=SEED[1], help_text="Accepted; sampling seeds are set per model."
    )
    repetition_penalty = serializers.FloatField(
        required=False, min_value=REPETITION_PENALTY[0], max_value=REPETITION_PENALTY[1]
    )


class SamplingRequestSchema(OpenApiSerializerExtension):
    """What the fields alone do not tell drf-spectacular: a list that may not be empty."""

    target_class = SamplingSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        for name, field in self.target.fields.items():
            if isinstance(field, serializers.ListSerializer) and not field.allow_empty:
                schema["properties"][name]["minItems"] = 1
        return schema


class GenerateRequestSerializer(SamplingSerializer):
    prompt = TextField(allow_blank=False, trim_whitespace=False, min_length=1)


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    content = TextField(allow_blank=True, trim_whitespace=False)


class ChatRequestSerializer(SamplingSerializer):
    messages = MessageSerializer(many=True, allow_empty=False)


class UsageFieldsSerializer(serializers.Serializer):
    model = serializers.CharField()
    tokens_generated = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    finish_reason = serializers.CharField(help_text='"stop", "length" or "eos", as the engine reports it.')


class GenerateResponseSerializer(UsageFieldsSerializer):
    text = serializers.CharField()


class AssistantMessageSerializer(serializers.Serializer):
    role = serializers.CharField(default="assistant")
    content = serializers.CharField()


class ChatResponseSerializer(UsageFieldsSerializer):
    message = AssistantMessageSerializer()


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(required=False)


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


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


class StreamDoneSerializer(UsageFieldsSerializer):
    """The `data` of a native stream's final `event: done`."""


class NativeStreamEventSerializer(EventStreamSerializer):
    events = (
        (
            "message",
            (
                "A text delta: the text itself (not JSON). Text with line breaks spans several `data:` lines, "
                "which SSE clients join with `\\n`."
            ),
            (),
        ),
        ("done", "The last event: JSON, how the generation ended.", (StreamDoneSerializer,)),
        ("error", "A failure after the stream started: JSON, the error; the stream ends.", (ErrorSerializer,)),
    )
