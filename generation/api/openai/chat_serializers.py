"""Request and response schemas of OpenAI's chat completions (/v1/chat/completions): content
parts, `max_completion_tokens`, logprobs, and tool calling (`tools`, `tool_choice`,
`parallel_tool_calls`, assistant `tool_calls` and `tool` messages: tools_serializers)."""

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.sampling_ranges import TOP_LOGPROBS
from generation.api.fields import (
    NO_NUL_PATTERN,
    BooleanField,
    IntegerField,
    MaxTokensField,
    TextField,
    optional_within,
    refuse_nul,
)
from generation.api.openai.completions_serializers import CompletionChunkSerializer
from generation.api.openai.serializers import (
    NEUTRAL_VALUES,
    STREAM_DATA,
    ChoiceSerializer,
    ChunkChoiceSerializer,
    OpenAIErrorSerializer,
    OpenAIRequestSerializer,
    ResponseSerializer,
)
from generation.api.openai.tools_serializers import (
    ToolCallDeltaSerializer,
    ToolCallSerializer,
    ToolChoiceField,
    ToolSerializer,
)
from generation.api.openapi import EventStreamSerializer

# Roles of OpenAI's chat API -> the roles of the catalog's chat templates.
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}


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
    top_logprobs = optional_within(
        IntegerField, TOP_LOGPROBS,
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

# Chat's: also `tool_calls`, when the answer is calls (ChatFinishReasonEnum in the schema: settings/core.py).
CHAT_FINISH_REASONS = ["stop", "length", "tool_calls"]


class ChatMessageResponseSerializer(serializers.Serializer):
    role = serializers.CharField(default="assistant")
    content = serializers.CharField(allow_null=True, help_text="null when the answer is tool calls only.")
    tool_calls = ToolCallSerializer(many=True, required=False, help_text="With tools: the calls the model made.")


class ChatChoiceSerializer(ChoiceSerializer):
    message = ChatMessageResponseSerializer()
    finish_reason = serializers.ChoiceField(choices=CHAT_FINISH_REASONS)


class ChatCompletionResponseSerializer(ResponseSerializer):
    object = serializers.CharField(default="chat.completion")
    choices = ChatChoiceSerializer(many=True)


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


class ChatCompletionStreamEventSerializer(EventStreamSerializer):
    events = (("message", STREAM_DATA, (ChatCompletionChunkSerializer, OpenAIErrorSerializer)),)
