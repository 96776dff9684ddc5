"""The schemas of tool calling in chat completions (generation.core.tool_calls): the tools of a request,
its `tool_choice`, the calls of an assistant message, and their deltas in a stream."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from generation.api.fields import NO_NUL_PATTERN, BooleanField, TextField


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


class FunctionCallDeltaSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, help_text="In the call's first chunk.")
    arguments = serializers.CharField(required=False, allow_blank=True, help_text="A fragment; joined by index.")


class ToolCallDeltaSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Which call of the answer this fragment belongs to.")
    id = serializers.CharField(required=False, help_text="In the call's first chunk.")
    type = FunctionTypeField(required=False, help_text="In the call's first chunk.")
    function = FunctionCallDeltaSerializer()
