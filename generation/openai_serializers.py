"""Request and response schemas of the OpenAI-compatible API (/v1/...).

The sampling parameters are the native API's (same ranges, same meaning); what differs
is OpenAI's wire format: `stop` as a string or a list, `max_completion_tokens`,
content parts, `stream_options`. Parameters this service cannot honour (n > 1, logprobs,
tools, penalties...) are refused with a 400 that names them, never silently ignored;
their neutral values (n = 1, logprobs = false...) are accepted, since many clients send them.
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.sampling_ranges import STOP_SEQUENCE_MAX_CHARS
from generation.native_serializers import (
    AssistantMessageSerializer,
    EventStreamSerializer,
    NO_NUL_PATTERN,
    MaxTokensField,
    SamplingRequestSchema,
    SamplingSerializer,
    TextField,
)

# Parameter -> the values that mean "off", which are accepted as if absent.
NEUTRAL_VALUES = {
    "n": (1,),
    "best_of": (1,),
    "echo": (False,),
    "suffix": ("",),
    "logprobs": (False, 0),
    "top_logprobs": (0,),
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "logit_bias": ({},),
    "tools": ([],),
    "functions": ([],),
    "tool_choice": ("none",),
    "response_format": ({"type": "text"},),
}

# The schema of each parameter of NEUTRAL_VALUES: its neutral values only (or null).
NEUTRAL_SCHEMAS = {
    "n": {"type": "integer", "enum": [1]},
    "best_of": {"type": "integer", "enum": [1]},
    "echo": {"type": "boolean", "enum": [False]},
    "suffix": {"type": "string", "enum": [""]},
    "logprobs": {"oneOf": [{"type": "boolean", "enum": [False]}, {"type": "integer", "enum": [0]}]},
    "top_logprobs": {"type": "integer", "enum": [0]},
    "presence_penalty": {"type": "number", "enum": [0]},
    "frequency_penalty": {"type": "number", "enum": [0]},
    "logit_bias": {"type": "object", "maxProperties": 0},
    "tools": {"type": "array", "maxItems": 0},
    "functions": {"type": "array", "maxItems": 0},
    "tool_choice": {"type": "string", "enum": ["none"]},
    "response_format": {
        "type": "object",
        "properties": {"type": {"allOf": [{"type": "string", "enum": ["text"]}]}},
        "required": ["type"],
        "additionalProperties": False,
    },
}
assert set(NEUTRAL_SCHEMAS) == set(NEUTRAL_VALUES)

def refuse_nul(text: str) -> str:
    """The native API's rule (DRF's for every CharField), for the fields that take JSON values."""
    if "\x00" in text:
        raise serializers.ValidationError("Null characters are not allowed.")
    return text


# Roles of OpenAI's chat API -> the roles of the catalog's chat templates.
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1, "maxLength": STOP_SEQUENCE_MAX_CHARS, "pattern": NO_NUL_PATTERN},
            {
                "type": "array",
                "items": {
                    "type": "string", "minLength": 1, "maxLength": STOP_SEQUENCE_MAX_CHARS, "pattern": NO_NUL_PATTERN
                },
                "maxItems": 4,
            },
        ]
    }
)
class StopField(serializers.Field):
    """OpenAI's `stop`: a string or a list of up to 4 strings."""

    default_error_messages = {
        "invalid": f"Use a string or a list of at most 4 non-empty strings of at most {STOP_SEQUENCE_MAX_CHARS} "
        "characters."
    }

    def to_internal_value(self, data):
        stops = [data] if isinstance(data, str) else data
        if not isinstance(stops, list) or len(stops) > 4:
            self.fail("invalid")
        if not all(isinstance(s, str) and 0 < len(s) <= STOP_SEQUENCE_MAX_CHARS for s in stops):
            self.fail("invalid")
        return [refuse_nul(stop) for stop in stops]

    def to_representation(self, value):
        return value


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(
        default=False, help_text="A last chunk with the token counts (`usage`) and no choices; default false."
    )


class OpenAIRequestSerializer(SamplingSerializer):
    """OpenAI's request: null means "not set" for every parameter."""

    stop = StopField(required=False, help_text="A string, or up to 8, that end the text where they appear.")
    stream = serializers.BooleanField(default=False, help_text="Server-sent events, one chunk per piece of text, "
                                      "then `data: [DONE]`; default false.")
    stream_options = StreamOptionsSerializer(required=False, help_text="Only with `stream: true`.")

    def to_internal_value(self, data):
        if isinstance(data, dict):  # OpenAI clients send null for "not set"
            data = {key: value for key, value in data.items() if value is not None}
        return super().to_internal_value(data)

    def validate(self, attrs):
        for name, neutral in NEUTRAL_VALUES.items():
            value = self.initial_data.get(name)
            if value is not None and value not in neutral:
                raise serializers.ValidationError({name: f"{name}={value!r} is not supported by this service."})
        if attrs.get("stream_options") and not attrs.get("stream"):
            raise serializers.ValidationError({"stream_options": "stream_options needs stream: true."})
        return attrs


class OpenAIRequestSchema(SamplingRequestSchema):
    """What the fields alone do not say: null is "not set" for the optional parameters,
    `stream_options` needs `stream: true`, and the unsupported parameters are accepted with
    their neutral values only."""

    target_class = OpenAIRequestSerializer
    match_subclasses = True
    priority = 1  # over SamplingRequestSchema, which it extends

    def map_serializer(self, auto_schema, direction):
        schema = super().map_serializer(auto_schema, direction)
        properties = schema["properties"]
        required = set(schema.get("required", ()))
        for name, prop in list(properties.items()):
            if name not in required:
                # OpenAPI 3.0 ignores the siblings of a $ref: wrapped, to be nullable.
                properties[name] = {"allOf": [prop], "nullable": True} if "$ref" in prop else {**prop, "nullable": True}
        for name, neutral in NEUTRAL_SCHEMAS.items():
            # In allOf, so that drf-spectacular's enum hook leaves these one-value enums inline.
            properties[name] = {
                "allOf": [neutral],
                "nullable": True,
                "description": "Not supported: accepted with this neutral value only.",
            }
        # `stream_options` (unless absent or null) only with `stream: true`.
        schema["anyOf"] = [
            {"not": {"required": ["stream_options"]}},
            {"properties": {"stream_options": {"not": {"type": "object"}}}},
            {"properties": {"stream": {"allOf": [{"type": "boolean", "enum": [True]}]}}, "required": ["stream"]},
        ]
        return schema


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1, "pattern": NO_NUL_PATTERN},
            {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "pattern": NO_NUL_PATTERN},
                "minItems": 1,
                "maxItems": 1,
            },
        ]
    }
)
class PromptField(serializers.JSONField):
    """OpenAI's `prompt`: a string, or a list holding one (token arrays and batches are not supported)."""


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "pattern": NO_NUL_PATTERN},
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "type": {"allOf": [{"type": "string", "enum": ["text"]}]},
                        "text": {"type": "string", "pattern": NO_NUL_PATTERN},
                    },
                    "required": ["type", "text"],
                },
            },
        ]
    }
)
class ContentField(serializers.JSONField):
    """A chat message's `content`: a string, or a list of text parts (no images)."""


class CompletionRequestSerializer(OpenAIRequestSerializer):
    prompt = PromptField(help_text="A string, or a list holding one string.")

    def validate_prompt(self, value):
        prompt = value[0] if isinstance(value, list) and len(value) == 1 else value
        if not isinstance(prompt, str):
            raise serializers.ValidationError("Use a string (token arrays and several prompts are not supported).")
        if not prompt:
            raise serializers.ValidationError("The prompt is empty.")
        return refuse_nul(prompt)


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=list(ROLES), help_text='"developer" is taken as "system".')
    content = ContentField(help_text="A string, or a list of text parts.", allow_null=True)
    name = TextField(required=False, min_length=1, help_text="Accepted and ignored.")

    def validate_content(self, value):
        if value is None or isinstance(value, str):
            return refuse_nul(value or "")
        if isinstance(value, list) and all(isinstance(part, dict) and part.get("type") == "text" for part in value):
            if all(isinstance(part.get("text"), str) for part in value):
                return refuse_nul("".join(part["text"] for part in value))
        raise serializers.ValidationError("Use a string or a list of {type: text, text} parts (text only).")

    def validate_role(self, value):
        return ROLES[value]


class ChatCompletionRequestSerializer(OpenAIRequestSerializer):
    messages = ChatMessageSerializer(
        many=True, allow_empty=False, help_text="The conversation so far, oldest first."
    )
    max_completion_tokens = MaxTokensField()

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs.get("max_completion_tokens") is not None:
            attrs["max_tokens"] = attrs.pop("max_completion_tokens")
        return attrs


# --- responses (for the OpenAPI schema) -------------------------------------------------


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class ChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    logprobs = serializers.JSONField(allow_null=True, help_text="Always null.")
    finish_reason = serializers.ChoiceField(choices=["stop", "length"])


class ChunkChoiceSerializer(ChoiceSerializer):
    finish_reason = serializers.ChoiceField(
        choices=["stop", "length"], allow_null=True, help_text="null until the chunk that ends the choice."
    )


class CompletionChoiceSerializer(ChoiceSerializer):
    text = serializers.CharField()


class CompletionChunkChoiceSerializer(ChunkChoiceSerializer):
    text = serializers.CharField()


class ChatChoiceSerializer(ChoiceSerializer):
    message = AssistantMessageSerializer()


class ResponseSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    created = serializers.IntegerField(help_text="Unix time.")
    model = serializers.CharField()
    usage = UsageSerializer()


class CompletionResponseSerializer(ResponseSerializer):
    object = serializers.CharField(default="text_completion")
    choices = CompletionChoiceSerializer(many=True)


class ChatCompletionResponseSerializer(ResponseSerializer):
    object = serializers.CharField(default="chat.completion")
    choices = ChatChoiceSerializer(many=True)


class CompletionChunkSerializer(serializers.Serializer):
    """A chunk of a streamed completion."""

    id = serializers.CharField()
    object = serializers.CharField(help_text='"text_completion"')
    created = serializers.IntegerField(help_text="Unix time.")
    model = serializers.CharField()
    choices = CompletionChunkChoiceSerializer(many=True)
    usage = UsageSerializer(
        required=False,
        allow_null=True,
        help_text="With `stream_options.include_usage`: null on every chunk but the last, whose `choices` is empty.",
    )


class ChatDeltaSerializer(serializers.Serializer):
    role = serializers.CharField(required=False, help_text='"assistant", on the first chunk only.')
    content = serializers.CharField(required=False)


class ChatChunkChoiceSerializer(ChunkChoiceSerializer):
    delta = ChatDeltaSerializer()


class ChatCompletionChunkSerializer(CompletionChunkSerializer):
    """A chunk of a streamed chat completion."""

    object = serializers.CharField(help_text='"chat.completion.chunk"')
    choices = ChatChunkChoiceSerializer(many=True)


class OpenAIModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="model")
    created = serializers.IntegerField()
    owned_by = serializers.CharField()


class OpenAIModelListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = OpenAIModelSerializer(many=True)


class OpenAIErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField()
    param = serializers.CharField(allow_null=True)
    code = serializers.CharField(allow_null=True)


class OpenAIErrorSerializer(serializers.Serializer):
    error = OpenAIErrorDetailSerializer()


# --- Server-Sent Events (for the OpenAPI schema) ------------------------------------------

STREAM_DATA = "JSON: a chunk, or an error after the stream started; the last event's data is `[DONE]` (not JSON)."


class CompletionStreamEventSerializer(EventStreamSerializer):
    events = (("message", STREAM_DATA, (CompletionChunkSerializer, OpenAIErrorSerializer)),)


class ChatCompletionStreamEventSerializer(EventStreamSerializer):
    events = (("message", STREAM_DATA, (ChatCompletionChunkSerializer, OpenAIErrorSerializer)),)
