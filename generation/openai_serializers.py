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
from generation.native_serializers import AssistantMessageSerializer, SamplingSerializer

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

# Roles of OpenAI's chat API -> the roles of the catalog's chat templates.
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1, "maxLength": STOP_SEQUENCE_MAX_CHARS},
            {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": STOP_SEQUENCE_MAX_CHARS},
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
        return stops

    def to_representation(self, value):
        return value


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(default=False)


class OpenAIRequestSerializer(SamplingSerializer):
    stop = StopField(required=False)
    stream = serializers.BooleanField(default=False)
    stream_options = StreamOptionsSerializer(required=False)

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


class CompletionRequestSerializer(OpenAIRequestSerializer):
    prompt = serializers.JSONField(help_text="A string, or a list holding one string.")

    def validate_prompt(self, value):
        prompt = value[0] if isinstance(value, list) and len(value) == 1 else value
        if not isinstance(prompt, str):
            raise serializers.ValidationError("Use a string (token arrays and several prompts are not supported).")
        if not prompt:
            raise serializers.ValidationError("The prompt is empty.")
        return prompt


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=list(ROLES))
    content = serializers.JSONField(help_text="A string, or a list of text parts.", allow_null=True)
    name = serializers.CharField(required=False, help_text="Accepted and ignored.")

    def validate_content(self, value):
        if value is None or isinstance(value, str):
            return value or ""
        if isinstance(value, list) and all(isinstance(part, dict) and part.get("type") == "text" for part in value):
            if all(isinstance(part.get("text"), str) for part in value):
                return "".join(part["text"] for part in value)
        raise serializers.ValidationError("Use a string or a list of {type: text, text} parts (text only).")

    def validate_role(self, value):
        return ROLES[value]


class ChatCompletionRequestSerializer(OpenAIRequestSerializer):
    messages = ChatMessageSerializer(many=True, allow_empty=False)
    max_completion_tokens = serializers.IntegerField(required=False, min_value=1)

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
    logprobs = serializers.JSONField(allow_null=True)
    finish_reason = serializers.ChoiceField(choices=["stop", "length"])


class CompletionChoiceSerializer(ChoiceSerializer):
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
