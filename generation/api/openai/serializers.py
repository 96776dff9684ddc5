"""What the OpenAI-compatible endpoints share in their request and response schemas (/v1/...).

The sampling parameters are the native API's (same ranges, same meaning); what differs
is OpenAI's wire format: `stop` as a string or a list, `stream_options`, `n` choices; and
what the engine offers beyond the native API: presence and frequency penalties, `min_p`,
`logit_bias`, and structured output (`response_format` json_object / json_schema, a grammar
the engine enforces token by token). Parameters this service cannot honour (best_of > 1,
legacy `functions`, echo...) are refused with a 400 that names them, never silently ignored;
their neutral values (best_of = 1...) are accepted, since many clients send them.

Each endpoint's own schemas: completions_serializers, chat_serializers (with tools_serializers),
responses_serializers.
"""

import json

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.sampling_ranges import (
    FREQUENCY_PENALTY,
    LOGIT_BIAS,
    LOGIT_BIAS_MAX_TOKENS,
    MIN_P,
    PRESENCE_PENALTY,
    STOP_SEQUENCE_MAX_CHARS,
)
from generation.api.fields import (
    NO_NUL_PATTERN,
    TOKEN_ID_MAX,
    BooleanField,
    IntegerField,
    NumberField,
    TextField,
    optional_within,
    refuse_nul,
)
from generation.api.sampling import SamplingRequestSchema, SamplingSerializer
from generation.api.summaries import SamplingDefaultsSerializer

MAX_CHOICES = 8

# Parameter -> the values that mean "off", which are accepted as if absent.
NEUTRAL_VALUES = {
    "best_of": (1,),
    "echo": (False,),
    "suffix": ("",),
    "tools": ([],),
    "functions": ([],),
    "tool_choice": ("none",),
}

# The schema of each parameter of NEUTRAL_VALUES: its neutral values only (or null).
NEUTRAL_SCHEMAS = {
    "best_of": {"type": "integer", "enum": [1]},
    "echo": {"type": "boolean", "enum": [False]},
    "suffix": {"type": "string", "enum": [""]},
    "tools": {"type": "array", "maxItems": 0},
    "functions": {"type": "array", "maxItems": 0},
    "tool_choice": {"type": "string", "enum": ["none"]},
}
assert set(NEUTRAL_SCHEMAS) == set(NEUTRAL_VALUES)


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
    include_usage = BooleanField(
        default=False, help_text="A last chunk with the token counts (`usage`) and no choices; default false."
    )


# A key of `logit_bias`: a token id in decimal digits.
TOKEN_ID_PATTERN = "^[0-9]+$"


# patternProperties (JSON Schema's, which OpenAPI 3.0 lacks; schemathesis and JSON Schema
# validators read it) says what the keys are; which ids a model has, only the model knows.
@extend_schema_field(
    {
        "type": "object",
        "patternProperties": {
            TOKEN_ID_PATTERN: {"type": "number", "minimum": LOGIT_BIAS[0], "maximum": LOGIT_BIAS[1]}
        },
        "additionalProperties": False,
        "maxProperties": LOGIT_BIAS_MAX_TOKENS,
    }
)
class LogitBiasField(serializers.Field):
    """OpenAI's `logit_bias`: token ids (as strings, JSON's keys) -> a bias added to their logits.

    Ids of 2^32 and over are no token's (the engine's ids are 32-bit); the generation core
    refuses those beyond the model's vocabulary, once the model is loaded."""

    default_error_messages = {
        "invalid": f"Use an object of at most {LOGIT_BIAS_MAX_TOKENS} token ids (strings of digits) to numbers "
        f"from {LOGIT_BIAS[0]:g} to {LOGIT_BIAS[1]:g}.",
        "not_a_token": "Token id {token} is not in any model's vocabulary.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, dict) or len(data) > LOGIT_BIAS_MAX_TOKENS:
            self.fail("invalid")
        bias = {}
        for token, value in data.items():
            if not (token.isascii() and token.isdigit()) or isinstance(value, bool):
                self.fail("invalid")
            if not isinstance(value, (int, float)) or not LOGIT_BIAS[0] <= value <= LOGIT_BIAS[1]:
                self.fail("invalid")
            digits = token.lstrip("0") or "0"  # int() refuses over 4,300 digits
            if len(digits) > len(str(TOKEN_ID_MAX)) or int(digits) > TOKEN_ID_MAX:
                self.fail("not_a_token", token=digits if len(digits) <= 20 else f"{digits[:20]}...")
            bias[int(digits)] = float(value)
        return bias

    def to_representation(self, value):
        return value


class JsonSchemaFormatSerializer(serializers.Serializer):
    name = TextField(
        min_length=1, max_length=64, trim_whitespace=False, help_text="The schema's name (not used for generation)."
    )
    description = TextField(required=False, allow_blank=True, help_text="Not used for generation.")
    schema = serializers.DictField(help_text="A JSON Schema: the output is JSON valid against it.")
    strict = BooleanField(required=False, help_text="Always strict here: the schema is enforced.")


class ResponseFormatSerializer(serializers.Serializer):
    type = serializers.ChoiceField(
        choices=["text", "json_object", "json_schema"],
        help_text="text: free text; json_object: a JSON object; json_schema: JSON valid against `json_schema.schema`.",
    )
    json_schema = JsonSchemaFormatSerializer(required=False, help_text="With type json_schema.")

    def validate(self, attrs):
        if attrs["type"] == "json_schema" and "json_schema" not in attrs:
            raise serializers.ValidationError({"json_schema": "type json_schema needs json_schema.schema."})
        return attrs


class OpenAIRequestSerializer(SamplingSerializer):
    """OpenAI's request: null means "not set" for every parameter."""

    # A parameter -> (its JSON type, the flag it needs true), as OpenAI refuses it without.
    needs_true = {"stream_options": ("object", "stream")}

    stop = StopField(required=False, help_text="A string, or up to 8, that end the text where they appear.")
    stream = BooleanField(default=False, help_text="Server-sent events, one chunk per piece of text, "
                          "then `data: [DONE]`; default false.")
    stream_options = StreamOptionsSerializer(required=False, help_text="Only with `stream: true`.")
    n = IntegerField(
        required=False, min_value=1, max_value=MAX_CHOICES,
        help_text=f"Choices to generate, 1 to {MAX_CHOICES}, one after the other (each a generation: counted, "
        "limited and charged to the API key as one); usage counts the prompt once. Default 1.",
    )
    presence_penalty = optional_within(
        NumberField, PRESENCE_PENALTY,
        help_text="Subtracted once from the logit of every token already in the text (positive: new topics); "
        "default 0.",
    )
    frequency_penalty = optional_within(
        NumberField, FREQUENCY_PENALTY,
        help_text="Subtracted from a token's logit per time it is already in the text (positive: less "
        "repetition); default 0.",
    )
    min_p = optional_within(
        NumberField, MIN_P,
        help_text="Only tokens at least this fraction as likely as the most likely one (an extension, as in "
        "vLLM and llama.cpp); default: none.",
    )
    logit_bias = LogitBiasField(
        required=False,
        help_text=f"Token id -> bias from {LOGIT_BIAS[0]:g} to {LOGIT_BIAS[1]:g} added to its logit (-100 bans "
        "it, 100 forces it); POST /api/tokenize gives a text's token ids.",
    )
    response_format = ResponseFormatSerializer(
        required=False,
        help_text="Structured output: json_object or json_schema constrain the text, token by token, to JSON "
        "(of the schema); a schema the engine cannot compile is a 400.",
    )

    def to_internal_value(self, data):
        if isinstance(data, dict):  # OpenAI clients send null for "not set"
            data = {key: value for key, value in data.items() if value is not None}
        return super().to_internal_value(data)

    # The parameters of NEUTRAL_VALUES that this request does not support.
    unsupported = tuple(NEUTRAL_VALUES)

    def validate(self, attrs):
        for name in self.unsupported:
            neutral = NEUTRAL_VALUES[name]
            value = self.initial_data.get(name)
            # Of the neutral value's type too: 1 == True, and 0 == False, in Python.
            if value is not None and not any(value == ok and type(value) is type(ok) for ok in neutral):
                # Named, not repeated: the value may be a whole list of tools.
                accepted = " or ".join(json.dumps(ok) for ok in neutral)
                raise serializers.ValidationError(
                    {name: f"{name} is not supported by this service (only {accepted} or null is accepted)."}
                )
        for name, (_, flag) in self.needs_true.items():
            if name in attrs and not attrs.get(flag):
                raise serializers.ValidationError({name: f"{name} needs {flag}: true."})
        return attrs


class OpenAIRequestSchema(SamplingRequestSchema):
    """What the fields alone do not say: null is "not set" for the optional parameters,
    `stream_options` needs `stream: true` (chat's `top_logprobs`, `logprobs: true`), and the
    unsupported parameters are accepted with their neutral values only."""

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
        for name in self.target.unsupported:
            neutral = NEUTRAL_SCHEMAS[name]
            # In allOf, so that drf-spectacular's enum hook leaves these one-value enums inline.
            properties[name] = {
                "allOf": [neutral],
                "nullable": True,
                "description": "Not supported: accepted with this neutral value only.",
            }
        # Each of needs_true (unless absent or null) only with its flag true.
        schema["allOf"] = [
            {
                "anyOf": [
                    {"not": {"required": [name]}},
                    {"properties": {name: {"not": {"type": json_type}}}},
                    {"properties": {flag: {"allOf": [{"type": "boolean", "enum": [True]}]}}, "required": [flag]},
                ]
            }
            for name, (json_type, flag) in self.target.needs_true.items()
        ]
        return schema


# --- responses (for the OpenAPI schema) -------------------------------------------------


class PromptTokensDetailsSerializer(serializers.Serializer):
    cached_tokens = serializers.IntegerField(
        help_text="Prompt tokens taken from the engine's prefix cache instead of being prefilled (0 with it off)."
    )


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    prompt_tokens_details = PromptTokensDetailsSerializer()


class ChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    logprobs = serializers.JSONField(
        allow_null=True,
        help_text="null unless asked for: chat `{content: [{token, logprob, bytes, top_logprobs}]}`, completions "
        "`{tokens, token_logprobs, top_logprobs, text_offset}`.",
    )
    finish_reason = serializers.ChoiceField(choices=["stop", "length"])


class ChunkChoiceSerializer(ChoiceSerializer):
    finish_reason = serializers.ChoiceField(
        choices=["stop", "length"], allow_null=True, help_text="null until the chunk that ends the choice."
    )


class ResponseSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    created = serializers.IntegerField(help_text="Unix time.")
    model = serializers.CharField()
    usage = UsageSerializer()


class OpenAIModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField(), help_text="As in GET /api/models.")
    object = serializers.CharField(default="model")
    created = serializers.IntegerField()
    owned_by = serializers.CharField()
    context_length = serializers.IntegerField(allow_null=True, help_text="As in GET /api/models.")
    max_tokens_limit = serializers.IntegerField(help_text="As in GET /api/models.")
    defaults = SamplingDefaultsSerializer(help_text="As in GET /api/models.")


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


STREAM_DATA = "JSON: a chunk, or an error after the stream started; the last event's data is `[DONE]` (not JSON)."
