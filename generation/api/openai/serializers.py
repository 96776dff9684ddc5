"""Request and response schemas of the OpenAI-compatible API (/v1/...).

The sampling parameters are the native API's (same ranges, same meaning); what differs
is OpenAI's wire format: `stop` as a string or a list, `max_completion_tokens`,
content parts, `stream_options`, `n` choices; and what the engine offers beyond the
native API: presence and frequency penalties, `min_p`, `logit_bias`, logprobs, and
structured output (`response_format` json_object / json_schema, a grammar the engine
enforces token by token), and chat's tool calling (`tools`, `tool_choice`,
`parallel_tool_calls`, assistant `tool_calls` and `tool` messages; generation.tool_calls).
Parameters this service cannot honour (best_of > 1, legacy `functions`, echo...) are refused
with a 400 that names them, never silently ignored; their neutral values (best_of = 1...)
are accepted, since many clients send them.
"""

import json

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.sampling_ranges import (
    FREQUENCY_PENALTY,
    LOGIT_BIAS,
    LOGIT_BIAS_MAX_TOKENS,
    MIN_P,
    PRESENCE_PENALTY,
    STOP_SEQUENCE_MAX_CHARS,
    TOP_LOGPROBS,
)
from generation.api.native.serializers import (
    BooleanField,
    EventStreamSerializer,
    IntegerField,
    NO_NUL_PATTERN,
    MaxTokensField,
    NumberField,
    SamplingDefaultsSerializer,
    SamplingRequestSchema,
    SamplingSerializer,
    TextField,
    TOKEN_ID_MAX,
)

MAX_CHOICES = 8
# Prompts of one /v1/completions request (LangChain's batch sends several): each a generation, one after the other.
MAX_PROMPTS = 16

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


def refuse_nul(text: str) -> str:
    """The native API's rule (DRF's for every CharField), for the fields that take JSON values."""
    if "\x00" in text:
        raise serializers.ValidationError("Null characters are not allowed.")
    return text


# Roles of OpenAI's chat API -> the roles of the catalog's chat templates.
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}


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
    presence_penalty = NumberField(
        required=False, min_value=PRESENCE_PENALTY[0], max_value=PRESENCE_PENALTY[1],
        help_text="Subtracted once from the logit of every token already in the text (positive: new topics); "
        "default 0.",
    )
    frequency_penalty = NumberField(
        required=False, min_value=FREQUENCY_PENALTY[0], max_value=FREQUENCY_PENALTY[1],
        help_text="Subtracted from a token's logit per time it is already in the text (positive: less "
        "repetition); default 0.",
    )
    min_p = NumberField(
        required=False, min_value=MIN_P[0], max_value=MIN_P[1],
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


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1, "pattern": NO_NUL_PATTERN},
            {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "pattern": NO_NUL_PATTERN},
                "minItems": 1,
                "maxItems": MAX_PROMPTS,
            },
        ]
    }
)
class PromptField(serializers.JSONField):
    """OpenAI's `prompt`: a string, or a list of up to MAX_PROMPTS (token arrays are not supported)."""


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
    prompt = PromptField(
        help_text=f"A string, or a list of 1 to {MAX_PROMPTS} strings: one completion each (its `n` choices), "
        "in the list's order (choice `index` = prompt's place × n + choice), one after the other. Token ids are "
        "not supported."
    )
    logprobs = IntegerField(
        required=False, min_value=0, max_value=5,
        help_text="Each token's logprob, and the logprobs of this many most likely tokens at its place; "
        "default: none.",
    )

    def validate_prompt(self, value) -> list[str]:
        """The prompts, as a list."""
        prompts = value if isinstance(value, list) else [value]
        if not prompts or not all(isinstance(prompt, str) for prompt in prompts):
            raise serializers.ValidationError(
                f"Use a string or a list of 1 to {MAX_PROMPTS} strings (token ids are not supported)."
            )
        if len(prompts) > MAX_PROMPTS:
            raise serializers.ValidationError(
                f"{len(prompts)} prompts is over this service's limit of {MAX_PROMPTS} per request."
            )
        if not all(prompts):
            raise serializers.ValidationError("A prompt is empty.")
        return [refuse_nul(prompt) for prompt in prompts]


@extend_schema_field({"type": "string", "enum": ["function"]})
class FunctionTypeField(serializers.ChoiceField):
    """The `type` of a tool, a call or a tool choice: function tools only."""

    def __init__(self, **kwargs):
        super().__init__(choices=["function"], **kwargs)


class FunctionCallSerializer(serializers.Serializer):
    name = TextField(min_length=1, max_length=64, trim_whitespace=False, help_text="The tool's name.")
    arguments = TextField(trim_whitespace=False, allow_blank=True, help_text="Its arguments: JSON, as text.")


class ToolCallSerializer(serializers.Serializer):
    id = TextField(trim_whitespace=False, allow_blank=True, help_text='The call\'s id ("call_...").')
    type = FunctionTypeField()
    function = FunctionCallSerializer()


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(
        choices=list(ROLES), help_text='"developer" is taken as "system"; "tool": a tool\'s result.'
    )
    content = ContentField(help_text="A string, or a list of text parts.", allow_null=True)
    # Not trimmed: DRF would refuse a name of whitespace (U+001C is whitespace to Python) that the schema allows.
    name = TextField(required=False, min_length=1, trim_whitespace=False, help_text="Accepted and ignored.")
    tool_calls = ToolCallSerializer(
        many=True, required=False, help_text="The calls an assistant message made (role assistant only)."
    )
    tool_call_id = TextField(
        required=False, trim_whitespace=False, allow_blank=True,
        help_text="With role tool: the call whose result this is.",
    )

    def validate(self, attrs):
        if "tool_calls" in attrs and attrs["role"] != "assistant":
            raise serializers.ValidationError({"tool_calls": "Only an assistant message has tool_calls."})
        return attrs

    def validate_content(self, value):
        if value is None or isinstance(value, str):
            return refuse_nul(value or "")
        if isinstance(value, list) and all(isinstance(part, dict) and part.get("type") == "text" for part in value):
            if all(isinstance(part.get("text"), str) for part in value):
                return refuse_nul("".join(part["text"] for part in value))
        raise serializers.ValidationError("Use a string or a list of {type: text, text} parts (text only).")

    def validate_role(self, value):
        return ROLES[value]


class ChatMessageSchema(OpenApiSerializerExtension):
    """What the fields alone do not say: `tool_calls` on an assistant message only."""

    target_class = ChatMessageSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["anyOf"] = [
            {"not": {"required": ["tool_calls"]}},
            {"properties": {"role": {"allOf": [{"type": "string", "enum": ["assistant"]}]}}, "required": ["role"]},
        ]
        return schema


class FunctionToolSerializer(serializers.Serializer):
    name = TextField(min_length=1, max_length=64, trim_whitespace=False, help_text="The function's name.")
    description = TextField(required=False, allow_blank=True, help_text="What it does, shown to the model.")
    parameters = serializers.DictField(
        required=False, help_text="A JSON Schema of its arguments (an object); none: no arguments."
    )
    strict = BooleanField(required=False, help_text="Always strict here when a call is required: enforced.")


class ToolSerializer(serializers.Serializer):
    type = FunctionTypeField(help_text="Function tools only.")
    function = FunctionToolSerializer()


class NamedFunctionSerializer(serializers.Serializer):
    name = TextField(min_length=1, max_length=64, trim_whitespace=False, help_text="One of `tools`.")


class NamedToolChoiceSerializer(serializers.Serializer):
    type = FunctionTypeField()
    function = NamedFunctionSerializer()


TOOL_CHOICES = ("none", "auto", "required")


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": list(TOOL_CHOICES)},
            {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["function"]},
                    "function": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NO_NUL_PATTERN}
                        },
                        "required": ["name"],
                    },
                },
                "required": ["type", "function"],
            },
        ]
    }
)
class ToolChoiceField(serializers.Field):
    """OpenAI's `tool_choice`: "none", "auto", "required", or {"type": "function", "function": {"name"}}."""

    default_error_messages = {
        # Braces doubled: DRF formats the message.
        "invalid": 'Use "none", "auto", "required" or {{"type": "function", "function": {{"name": ...}}}}.'
    }

    def to_internal_value(self, data):
        if isinstance(data, str) and data in TOOL_CHOICES:
            return data
        if not isinstance(data, dict):
            self.fail("invalid")
        named = NamedToolChoiceSerializer(data=data)
        if not named.is_valid():
            raise serializers.ValidationError(named.errors)
        return {"name": named.validated_data["function"]["name"]}

    def to_representation(self, value):
        return value


class ChatCompletionRequestSerializer(OpenAIRequestSerializer):
    unsupported = tuple(name for name in NEUTRAL_VALUES if name not in ("tools", "tool_choice"))

    messages = ChatMessageSerializer(
        many=True, allow_empty=False, help_text="The conversation so far, oldest first."
    )
    tools = ToolSerializer(
        many=True, required=False,
        help_text="Functions the model may call. With a model whose chat template takes tools, the template shows "
        "them and its calls are read from `<tool_call>{json}</tool_call>` blocks; otherwise a system message "
        "describes them and the answer is JSON under a grammar (a call, or `{\"content\": text}` under "
        "`auto`). See the README, \"Tool calling\".",
    )
    tool_choice = ToolChoiceField(
        required=False,
        help_text='"none": tools not shown, a plain answer; "auto" (the default with tools): a call or an answer; '
        '"required": a call; a named function: a call of it. Required and named calls follow the tool\'s '
        "parameters' schema (a grammar the engine enforces).",
    )
    parallel_tool_calls = BooleanField(
        required=False,
        help_text="true: one answer may hold several calls (at most 4). Unset or false: one call per answer "
        "(small models allowed several repeat their call).",
    )
    max_completion_tokens = MaxTokensField()
    logprobs = BooleanField(
        default=False, help_text="Each token's logprob in `choices[].logprobs.content`; default false."
    )
    top_logprobs = IntegerField(
        required=False, min_value=TOP_LOGPROBS[0], max_value=TOP_LOGPROBS[1],
        help_text="Also this many most likely tokens at each place; only with `logprobs: true`. Default 0.",
    )

    needs_true = {**OpenAIRequestSerializer.needs_true, "top_logprobs": ("integer", "logprobs")}

    def validate(self, attrs):
        attrs = super().validate(attrs)
        tools, choice = attrs.get("tools", []), attrs.get("tool_choice")
        if isinstance(choice, dict) and choice["name"] not in {tool["function"]["name"] for tool in tools}:
            raise serializers.ValidationError({"tool_choice": f"No tool named {choice['name']!r} in tools."})
        if choice == "required" and not tools:
            raise serializers.ValidationError({"tool_choice": "tool_choice required needs tools."})
        return attrs


# --- responses (for the OpenAPI schema) -------------------------------------------------


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


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


# Chat's: also `tool_calls`, when the answer is calls (ChatFinishReasonEnum: settings/core.py).
CHAT_FINISH_REASONS = ["stop", "length", "tool_calls"]


class CompletionChoiceSerializer(ChoiceSerializer):
    text = serializers.CharField()


class CompletionChunkChoiceSerializer(ChunkChoiceSerializer):
    text = serializers.CharField()


class ChatMessageResponseSerializer(serializers.Serializer):
    role = serializers.CharField(default="assistant")
    content = serializers.CharField(allow_null=True, help_text="null when the answer is tool calls only.")
    tool_calls = ToolCallSerializer(many=True, required=False, help_text="With tools: the calls the model made.")


class ChatChoiceSerializer(ChoiceSerializer):
    message = ChatMessageResponseSerializer()
    finish_reason = serializers.ChoiceField(choices=CHAT_FINISH_REASONS)


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


class FunctionCallDeltaSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, help_text="In the call's first chunk.")
    arguments = serializers.CharField(required=False, allow_blank=True, help_text="A fragment; joined by index.")


class ToolCallDeltaSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Which call of the answer this fragment belongs to.")
    id = serializers.CharField(required=False, help_text="In the call's first chunk.")
    type = FunctionTypeField(required=False, help_text="In the call's first chunk.")
    function = FunctionCallDeltaSerializer()


class ChatDeltaSerializer(serializers.Serializer):
    role = serializers.CharField(required=False, help_text='"assistant", on the first chunk only.')
    content = serializers.CharField(required=False)
    tool_calls = ToolCallDeltaSerializer(many=True, required=False)


class ChatChunkChoiceSerializer(ChunkChoiceSerializer):
    delta = ChatDeltaSerializer()
    finish_reason = serializers.ChoiceField(
        choices=CHAT_FINISH_REASONS, allow_null=True, help_text="null until the chunk that ends the choice."
    )


class ChatCompletionChunkSerializer(CompletionChunkSerializer):
    """A chunk of a streamed chat completion."""

    object = serializers.CharField(help_text='"chat.completion.chunk"')
    choices = ChatChunkChoiceSerializer(many=True)


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


# --- Server-Sent Events (for the OpenAPI schema) ------------------------------------------

STREAM_DATA = "JSON: a chunk, or an error after the stream started; the last event's data is `[DONE]` (not JSON)."


class CompletionStreamEventSerializer(EventStreamSerializer):
    events = (("message", STREAM_DATA, (CompletionChunkSerializer, OpenAIErrorSerializer)),)


class ChatCompletionStreamEventSerializer(EventStreamSerializer):
    events = (("message", STREAM_DATA, (ChatCompletionChunkSerializer, OpenAIErrorSerializer)),)
