"""The request schema of OpenAI's Responses API (/v1/responses).

`input` is a string or a list of items: messages (text content only), and the
`function_call` / `function_call_output` items of tool calling; `instructions` a system
message before it, `text.format` the structured output of chat's `response_format` and
`tools` chat's function tools, in the Responses API's flat shapes. Parameters this service
cannot honour (background responses, reasoning summaries...) are refused with a 400 that
names them, unless they carry their neutral value. The response object and the stream's
events: responses_output_serializers.
"""

import re

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from generation.api.fields import NO_NUL_PATTERN, BooleanField, MaxTokensField, TextField, refuse_nul
from generation.api.openai.chat_serializers import ROLES
from generation.api.openai.tools_serializers import TOOL_CHOICES, FunctionToolSerializer, FunctionTypeField
from generation.api.sampling import SamplingSerializer

# The roles of a message item (OpenAI's "developer" is a system message); tools answer with items of their own.
INPUT_ROLES = ("user", "system", "developer", "assistant")
TEXT_PART_TYPES = ("input_text", "output_text")
FORMAT_NAME_PATTERN = "^[a-zA-Z0-9_-]{1,64}$"
METADATA_MAX_KEYS = 16


def _enum(*values) -> dict:
    # In allOf, so that drf-spectacular's enum hook leaves these enums inline.
    return {"allOf": [{"type": "string", "enum": list(values)}]}


TEXT_SCHEMA = {"type": "string", "pattern": NO_NUL_PATTERN}
MESSAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "type": _enum("message"),
        "role": _enum(*INPUT_ROLES),
        "content": {
            "oneOf": [
                TEXT_SCHEMA,
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"type": _enum(*TEXT_PART_TYPES), "text": TEXT_SCHEMA},
                        "required": ["type", "text"],
                    },
                },
            ]
        },
    },
    "required": ["role", "content"],
}
NAME_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NO_NUL_PATTERN}
FUNCTION_CALL_SCHEMA = {
    "type": "object",
    "properties": {
        "type": _enum("function_call"),
        "call_id": TEXT_SCHEMA,
        "name": NAME_SCHEMA,
        "arguments": TEXT_SCHEMA,
    },
    "required": ["type", "call_id", "name", "arguments"],
}
FUNCTION_CALL_OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {"type": _enum("function_call_output"), "call_id": TEXT_SCHEMA, "output": TEXT_SCHEMA},
    "required": ["type", "call_id", "output"],
}


@extend_schema_field(
    {
        "oneOf": [
            {**TEXT_SCHEMA, "minLength": 1},
            {
                "type": "array",
                "items": {"oneOf": [MESSAGE_SCHEMA, FUNCTION_CALL_SCHEMA, FUNCTION_CALL_OUTPUT_SCHEMA]},
                "minItems": 1,
            },
        ]
    }
)
class InputField(serializers.JSONField):
    """`input`: a string (a user message), or a list of items; as the core's chat messages, oldest
    first: a run of `function_call` items is one assistant message with their `tool_calls`, a
    `function_call_output` a `tool` message."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            if not data:
                raise serializers.ValidationError("The input is empty.")
            return [{"role": "user", "content": refuse_nul(data)}]
        if not isinstance(data, list) or not data:
            raise serializers.ValidationError("Use a string, or a non-empty list of messages.")
        errors = {}
        messages = []
        for index, item in enumerate(data):
            try:
                message = self.item(item)
            except serializers.ValidationError as exc:
                errors[index] = exc.detail
                continue
            if message.get("tool_calls") and messages and messages[-1].get("tool_calls"):
                messages[-1]["tool_calls"].extend(message["tool_calls"])  # parallel calls: one answer
            else:
                messages.append(message)
        if errors:
            raise serializers.ValidationError(errors)
        return messages

    @classmethod
    def item(cls, item) -> dict:
        if not isinstance(item, dict):
            raise serializers.ValidationError("Use an object: a message {role, content}, or a function call or output.")
        kind = item.get("type", "message")
        if kind == "function_call":
            call = {"id": cls.text(item, "call_id"), "name": cls.text(item, "name", max_length=64),
                    "arguments": cls.text(item, "arguments")}
            return {"role": "assistant", "content": "", "tool_calls": [call]}
        if kind == "function_call_output":
            return {"role": "tool", "content": cls.text(item, "output"), "tool_call_id": cls.text(item, "call_id")}
        if kind != "message":
            raise serializers.ValidationError(
                {"type": "Use message, function_call or function_call_output (no other items are supported)."}
            )
        return cls.message(item)

    @staticmethod
    def text(item: dict, name: str, *, max_length: int | None = None) -> str:
        value = item.get(name)
        if not isinstance(value, str) or (max_length is not None and not 0 < len(value) <= max_length):
            limit = f" of 1 to {max_length} characters" if max_length else ""
            raise serializers.ValidationError({name: f"Use a string{limit}."})
        try:
            return refuse_nul(value)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({name: exc.detail}) from None

    @staticmethod
    def message(item: dict) -> dict:
        if item.get("role") not in INPUT_ROLES:
            raise serializers.ValidationError({"role": f"Use one of {', '.join(INPUT_ROLES)}."})
        content = item.get("content")
        if isinstance(content, list) and all(
            isinstance(part, dict) and part.get("type") in TEXT_PART_TYPES and isinstance(part.get("text"), str)
            for part in content
        ):
            content = "".join(part["text"] for part in content)
        if not isinstance(content, str):
            raise serializers.ValidationError(
                {"content": "Use a string or a list of {type: input_text or output_text, text} parts (text only)."}
            )
        try:
            return {"role": ROLES[item["role"]], "content": refuse_nul(content)}
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"content": exc.detail}) from None


@extend_schema_field(
    {
        "oneOf": [
            {"type": "object", "properties": {"type": _enum("text")}, "required": ["type"]},
            {"type": "object", "properties": {"type": _enum("json_object")}, "required": ["type"]},
            {
                "type": "object",
                "properties": {
                    "type": _enum("json_schema"),
                    "name": {"type": "string", "pattern": FORMAT_NAME_PATTERN},
                    "schema": {"type": "object"},
                    "description": TEXT_SCHEMA,
                    "strict": {"type": "boolean"},
                },
                "required": ["type", "name", "schema"],
            },
        ]
    }
)
class TextFormatField(serializers.JSONField):
    """`text.format`: free text, any JSON object, or JSON valid against a schema (constrained token by token)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict) or data.get("type") not in ("text", "json_object", "json_schema"):
            raise serializers.ValidationError(
                "Use {type: text}, {type: json_object} or {type: json_schema, name, schema}."
            )
        if data["type"] != "json_schema":
            return {"type": data["type"]}
        name = data.get("name")
        if not isinstance(name, str) or not re.fullmatch(FORMAT_NAME_PATTERN, name):
            raise serializers.ValidationError({"name": "Use 1 to 64 letters, digits, _ or -."})
        if not isinstance(data.get("schema"), dict):
            raise serializers.ValidationError({"schema": "Use a JSON Schema (an object)."})
        if "strict" in data and not isinstance(data["strict"], bool):
            raise serializers.ValidationError({"strict": "Use a boolean."})
        if "description" in data and not isinstance(data["description"], str):
            raise serializers.ValidationError({"description": "Use a string."})
        described = {"description": refuse_nul(data["description"])} if "description" in data else {}
        return {"type": "json_schema", "name": name, "schema": data["schema"], **described,
                "strict": data.get("strict", True)}


class ResponsesFunctionToolSerializer(FunctionToolSerializer):
    """A function tool, flat: chat's `function` object with its `type` beside its fields."""

    type = FunctionTypeField(help_text="Function tools only.")


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": list(TOOL_CHOICES)},
            {
                "type": "object",
                "properties": {"type": {"type": "string", "enum": ["function"]}, "name": NAME_SCHEMA},
                "required": ["type", "name"],
            },
        ]
    }
)
class ResponsesToolChoiceField(serializers.JSONField):
    """`tool_choice`: "none", "auto", "required", or {"type": "function", "name"}; as chat's, a name {"name"}."""

    def to_internal_value(self, data):
        if isinstance(data, str) and data in TOOL_CHOICES:
            return data
        if not isinstance(data, dict) or data.get("type") != "function":
            raise serializers.ValidationError('Use "none", "auto", "required" or {"type": "function", "name": ...}.')
        name = data.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= 64:
            raise serializers.ValidationError({"name": "Use a string of 1 to 64 characters."})
        return {"name": refuse_nul(name)}


class TextConfigSerializer(serializers.Serializer):
    format = TextFormatField(required=False, help_text="Default {type: text}.")


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "string", "maxLength": 512, "pattern": NO_NUL_PATTERN},
        "maxProperties": METADATA_MAX_KEYS,
    }
)
class MetadataField(serializers.JSONField):
    """`metadata`: up to 16 string values, given back with the response."""

    def to_internal_value(self, data):
        if not isinstance(data, dict) or len(data) > METADATA_MAX_KEYS:
            raise serializers.ValidationError(f"Use an object of at most {METADATA_MAX_KEYS} strings.")
        if not all(isinstance(value, str) and len(value) <= 512 for value in data.values()):
            raise serializers.ValidationError("Each value is a string of at most 512 characters.")
        return {key: refuse_nul(value) for key, value in data.items()}


class NeutralField(serializers.JSONField):
    """A parameter this service does not support, accepted with its neutral values only."""

    def __init__(self, *neutral, schema: dict, **kwargs):
        self.neutral = neutral
        self.neutral_schema = schema
        super().__init__(required=False, help_text="Not supported: accepted with this neutral value only.", **kwargs)

    def to_internal_value(self, data):
        # Of the neutral value's type too: 0 == False in Python.
        if not any(data == ok and type(data) is type(ok) for ok in self.neutral):
            accepted = " or ".join(repr(ok).replace("'", '"') for ok in self.neutral)
            raise serializers.ValidationError(f"{self.field_name} is not supported by this service (only {accepted}).")
        return data


class NeutralFieldSchema(OpenApiSerializerFieldExtension):
    target_class = NeutralField

    def map_serializer_field(self, auto_schema, direction):
        return {"allOf": [self.target.neutral_schema], "description": self.target.help_text}


class ResponsesRequestSerializer(SamplingSerializer):
    # The sampling parameters of the Responses API are `temperature` and `top_p` only.
    top_k = max_tokens = stop = seed = repetition_penalty = None

    input = InputField(help_text="A string (one user message), or a list of messages {role, content}, oldest first.")
    instructions = TextField(
        required=False, allow_blank=True, trim_whitespace=False,
        help_text="A system message before the input (not carried on by `previous_response_id`).",
    )
    max_output_tokens = MaxTokensField()
    text = TextConfigSerializer(required=False, help_text="`format`: structured output.")
    stream = BooleanField(default=False, help_text="Typed Server-Sent Events (response.output_text.delta...).")
    store = BooleanField(
        default=True, help_text="Keep the response for GET /v1/responses/{id} and `previous_response_id`; "
        "default true.",
    )
    previous_response_id = TextField(
        required=False, min_length=1, max_length=64, trim_whitespace=False,
        help_text="A stored response of the same API key: its input and output go before this input.",
    )
    metadata = MetadataField(required=False, help_text="Up to 16 strings, given back with the response.")
    tools = ResponsesFunctionToolSerializer(
        many=True, required=False, help_text='Functions the model may call, as in chat completions (README, "Tool '
        'calling"); its calls are `function_call` items of `output`, their results `function_call_output` items '
        "of a later input.",
    )
    tool_choice = ResponsesToolChoiceField(
        required=False, help_text='"none", "auto" (the default), "required", or {"type": "function", "name"}.'
    )
    parallel_tool_calls = BooleanField(
        default=True, help_text="Whether one answer may hold several calls (at most 4 here); default true."
    )
    background = NeutralField(False, schema={"type": "boolean", "enum": [False]})
    include = NeutralField([], schema={"type": "array", "maxItems": 0})
    truncation = NeutralField("disabled", schema={"type": "string", "enum": ["disabled"]})
    top_logprobs = NeutralField(0, schema={"type": "integer", "enum": [0]})

    def validate(self, attrs):
        names = {tool["name"] for tool in attrs.get("tools", [])}
        choice = attrs.get("tool_choice")
        if isinstance(choice, dict) and choice["name"] not in names:
            raise serializers.ValidationError({"tool_choice": f"No tool named {choice['name']!r} in tools."})
        if choice == "required" and not names:
            raise serializers.ValidationError({"tool_choice": "tool_choice required needs tools."})
        return attrs
