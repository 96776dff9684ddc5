"""Request and response schemas of the native API (/api/generate, /api/chat).

The request serializers validate; the others only describe responses in the OpenAPI schema,
which tests/e2e/test_schema_fuzz.py holds to what the server really does.
"""

import json

from django.conf import settings
from django.db import DatabaseError
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.models import ModelEntry
from catalog.sampling_ranges import (
    REPETITION_PENALTY,
    SEED,
    STOP_SEQUENCE_MAX_CHARS,
    TEMPERATURE,
    TOP_K,
    TOP_P,
)
from catalog.selectors import allowed_models

# DRF refuses a NUL character in any CharField ("Null characters are not allowed.").
NO_NUL_PATTERN = "^[^\\u0000]*$"


class TextField(serializers.CharField):
    """A string of a request, and nothing else (DRF's CharField takes 0 as "0"); the schema says that it
    holds no NUL character."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class TextFieldSchema(OpenApiSerializerFieldExtension):
    target_class = TextField

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {**schema, "pattern": NO_NUL_PATTERN}


class IntegerField(serializers.IntegerField):
    """A JSON integer of a request, as the schema says: DRF's IntegerField also takes "2" and true."""

    def to_internal_value(self, data):
        if isinstance(data, (bool, str)):
            self.fail("invalid")
        return super().to_internal_value(data)


class SeedField(IntegerField):
    """A seed: any 64-bit integer, signed or not (-2^63 to 2^64 - 1), which no one 64-bit format covers."""


class SeedFieldSchema(OpenApiSerializerFieldExtension):
    """The seed's range without drf-spectacular's `format: int64`, which would end it at 2^63 - 1."""

    target_class = SeedField

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        schema.pop("format", None)
        return schema


class NumberField(serializers.FloatField):
    """A JSON number of a request, as the schema says: DRF's FloatField also takes "0.5" and true."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class BooleanField(serializers.BooleanField):
    """A JSON boolean of a request, as the schema says: DRF's BooleanField also takes "true", 1 and "yes"."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class MaxTokensField(IntegerField):
    """`max_tokens`: at least 1 and at most LLM_MAX_TOKENS_LIMIT, as the schema says, even where
    another field overrides it (chat's `max_completion_tokens`); the generation core checks the
    value in effect against the admin's lower limit of the model, with a message that names it."""

    def __init__(self, **kwargs):
        super().__init__(required=False, min_value=1, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value > settings.LLM_MAX_TOKENS_LIMIT:
            raise serializers.ValidationError(
                f"{self.field_name} is {value}, over this service's limit of {settings.LLM_MAX_TOKENS_LIMIT}."
            )
        return value


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


MODEL_DEFAULT = "default: the model's default (set in the admin), else the service's"


class ModelIdField(TextField):
    """`model`: a catalog id or alias. The schema lists those this service serves now."""


class ModelIdFieldSchema(OpenApiSerializerFieldExtension):
    """The catalog's ids as the schema's enum, read each time the schema is served: Swagger UI
    offers them, and an admin's change shows at the next load of the page."""

    target_class = ModelIdField

    def map_serializer_field(self, auto_schema, direction):
        schema = {**auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True),
                  "pattern": NO_NUL_PATTERN}
        try:
            model_ids = [name for entry in allowed_models() for name in [entry.model_id, *entry.aliases]]
        except DatabaseError:  # no catalog to read (e.g. `manage.py check` before migrations): no list
            return schema
        # In allOf, so that drf-spectacular's enum hook leaves the list inline, per field.
        return {**schema, "allOf": [{"enum": model_ids}]} if model_ids else schema


class SamplingSerializer(serializers.Serializer):
    # min_length: the schema's minLength (an empty string is refused as blank before it applies).
    model = ModelIdField(
        required=False,
        allow_blank=False,
        min_length=1,
        max_length=200,
        help_text="Catalog id of the model, or one of its aliases (GET /api/models lists them); default: the "
        "service's default model.",
    )
    temperature = NumberField(
        required=False, min_value=TEMPERATURE[0], max_value=TEMPERATURE[1],
        help_text=f"Sampling temperature, {TEMPERATURE[0]:g} to {TEMPERATURE[1]:g}; 0 is greedy (the most likely "
        f"token each time); {MODEL_DEFAULT}.",
    )
    top_p = NumberField(
        required=False, min_value=TOP_P[0], max_value=TOP_P[1],
        help_text=f"Nucleus sampling: only the most likely tokens whose probabilities add up to this, "
        f"{TOP_P[0]:g} to {TOP_P[1]:g}; {MODEL_DEFAULT} (none: every token).",
    )
    top_k = IntegerField(
        required=False, min_value=TOP_K[0], max_value=TOP_K[1],
        help_text=f"Only the k most likely tokens, {TOP_K[0]} to {TOP_K[1]:,}; {MODEL_DEFAULT} (none: every token).",
    )
    max_tokens = MaxTokensField()
    stop = serializers.ListField(
        child=TextField(allow_blank=False, trim_whitespace=False, min_length=1, max_length=STOP_SEQUENCE_MAX_CHARS),
        required=False,
        max_length=8,
        help_text=f"Up to 8 strings (1 to {STOP_SEQUENCE_MAX_CHARS} characters each) that end the text where they "
        "appear, themselves left out; added to the model's own stop sequences.",
    )
    seed = SeedField(
        required=False, min_value=SEED[0], max_value=SEED[1],
        help_text="Accepted for compatibility (a 64-bit integer) and ignored: sampling seeds are set per model "
        "in the catalog.",
    )
    repetition_penalty = NumberField(
        required=False, min_value=REPETITION_PENALTY[0], max_value=REPETITION_PENALTY[1],
        help_text=f"Penalty on tokens already in the text, {REPETITION_PENALTY[0]:g} to {REPETITION_PENALTY[1]:g}; "
        f"1 is none, above 1 repeats less; {MODEL_DEFAULT} (none).",
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


# The schema of "any JSON object" (native `format: "json"`, OpenAI `response_format: json_object`).
JSON_OBJECT_SCHEMA = json.dumps({"type": "object"})


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": ["json"]},
            {"type": "object", "description": "A JSON Schema."},
        ]
    }
)
class FormatField(serializers.JSONField):
    """Structured output, as Ollama's `format`: "json" (a JSON object) or a JSON schema.
    Validated to the JSON schema text (or None) that the engine's grammar takes."""

    default_error_messages = {"invalid": 'Use "json" or a JSON schema (an object).'}

    def to_internal_value(self, data):
        if data == "json":
            return JSON_OBJECT_SCHEMA
        if isinstance(data, dict):
            return json.dumps(data)
        self.fail("invalid")


class NativeRequestSerializer(SamplingSerializer):
    format = FormatField(
        required=False,
        help_text='Structured output: "json" for a JSON object, or a JSON schema that the text will be valid '
        "against, enforced token by token; a schema the engine cannot compile is a 400. Default: free text.",
    )


class GenerateRequestSerializer(NativeRequestSerializer):
    prompt = TextField(
        allow_blank=False, trim_whitespace=False, min_length=1,
        help_text="Text to continue, as is (no chat template); with the prompt, at most the model's context.",
    )


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"], help_text="Who says it.")
    content = TextField(allow_blank=True, trim_whitespace=False, help_text="What is said.")


class ChatRequestSerializer(NativeRequestSerializer):
    messages = MessageSerializer(
        many=True, allow_empty=False,
        help_text="The conversation so far, oldest first; rendered with the model's chat template.",
    )


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


# --- tokenizer ------------------------------------------------------------------------

TOKEN_ID_MAX = 2**32 - 1  # the engine's token ids are 32-bit


class TokenizeRequestSerializer(serializers.Serializer):
    model = ModelIdField(
        required=False, allow_blank=False, min_length=1, max_length=200,
        help_text="Catalog id of the model whose tokenizer to use; default: the service's default model.",
    )
    text = TextField(
        allow_blank=True, trim_whitespace=False,
        help_text="Text to tokenize, as is: no BOS token is added; special tokens written as text (e.g. "
        "`<|im_start|>`) are parsed as such.",
    )


class TokenizeResponseSerializer(serializers.Serializer):
    model = serializers.CharField()
    tokens = serializers.ListField(child=serializers.IntegerField(), help_text="The token ids.")
    count = serializers.IntegerField(help_text="How many tokens.")


class DetokenizeRequestSerializer(serializers.Serializer):
    model = ModelIdField(
        required=False, allow_blank=False, min_length=1, max_length=200,
        help_text="Catalog id of the model whose tokenizer to use; default: the service's default model.",
    )
    tokens = serializers.ListField(
        child=IntegerField(min_value=0, max_value=TOKEN_ID_MAX), max_length=100_000,
        help_text="Token ids; an id beyond the vocabulary has no text.",
    )


class DetokenizeResponseSerializer(serializers.Serializer):
    model = serializers.CharField()
    text = serializers.CharField(allow_blank=True, help_text="The ids' text, special tokens included.")


# --- the model list ----------------------------------------------------------------

# The catalog's capability names as the original service's clients know them.
WIRE_CAPABILITIES = {ModelEntry.Capability.GENERATE: "text-generation", ModelEntry.Capability.CHAT: "chat"}


class CapabilitiesField(serializers.ListField):
    child = serializers.ChoiceField(choices=list(WIRE_CAPABILITIES.values()))

    def to_representation(self, data):
        return [WIRE_CAPABILITIES[capability] for capability in data]


class SamplingDefaultsSerializer(serializers.Serializer):
    # The parameters of a model's defaults (SamplingParams) that can have one.
    temperature = serializers.FloatField()
    max_tokens = serializers.IntegerField()
    top_p = serializers.FloatField(allow_null=True)
    top_k = serializers.IntegerField(allow_null=True)
    repetition_penalty = serializers.FloatField(allow_null=True)


class ModelSummarySerializer(serializers.ModelSerializer):
    """A catalog entry as clients see it."""

    # Context: `servable` (model id -> its ServableModel, with the defaults and limits in effect)
    # and `context_lengths` (model id -> the context of the models loaded in this process).
    id = serializers.CharField(source="model_id")
    name = serializers.CharField(source="display_name")
    capabilities = CapabilitiesField(help_text='"text-generation" (POST /api/generate) and/or "chat" (POST /api/chat).')
    context_length = serializers.SerializerMethodField(
        help_text="Tokens of context (prompt and output): the catalog's, else the model file's once the model "
        "is loaded; null until then."
    )
    defaults = serializers.SerializerMethodField(
        help_text="What a request that leaves a sampling parameter out gets (the model's, the service's or the "
        "environment's default); null: the parameter is off."
    )
    max_tokens_limit = serializers.SerializerMethodField(help_text="The largest max_tokens a request may ask for.")
    aliases = serializers.ListField(
        child=serializers.CharField(), help_text="Short names a request may send as `model` instead of the id."
    )

    class Meta:
        model = ModelEntry
        fields = ["id", "aliases", "name", "description", "size", "capabilities", "context_length", "defaults",
                  "max_tokens_limit"]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_context_length(self, entry) -> int | None:
        return entry.context_length or self.context["context_lengths"].get(entry.model_id)

    @extend_schema_field(SamplingDefaultsSerializer)
    def get_defaults(self, entry) -> dict:
        return SamplingDefaultsSerializer(self.context["servable"][entry.model_id].defaults).data

    @extend_schema_field(serializers.IntegerField())
    def get_max_tokens_limit(self, entry) -> int:
        return self.context["servable"][entry.model_id].max_tokens_limit


class ModelListSerializer(serializers.Serializer):
    models = ModelSummarySerializer(many=True)
