"""Request and response schemas of the native API (/api/generate, /api/chat)."""

from rest_framework import serializers

from catalog.sampling_ranges import (
    REPETITION_PENALTY,
    SEED,
    STOP_SEQUENCE_MAX_CHARS,
    TEMPERATURE,
    TOP_K,
    TOP_P,
)


class SamplingSerializer(serializers.Serializer):
    model = serializers.CharField(
        required=False, allow_blank=False, max_length=200, help_text="Catalog id; default model if omitted."
    )
    temperature = serializers.FloatField(required=False, min_value=TEMPERATURE[0], max_value=TEMPERATURE[1])
    top_p = serializers.FloatField(required=False, min_value=TOP_P[0], max_value=TOP_P[1])
    top_k = serializers.IntegerField(required=False, min_value=TOP_K[0], max_value=TOP_K[1])
    max_tokens = serializers.IntegerField(required=False, min_value=1)
    stop = serializers.ListField(
        child=serializers.CharField(allow_blank=False, trim_whitespace=False, max_length=STOP_SEQUENCE_MAX_CHARS),
        required=False,
        max_length=8,
    )
    seed = serializers.IntegerField(
        required=False, min_value=SEED[0], max_value=SEED[1], help_text="Accepted; sampling seeds are set per model."
    )
    repetition_penalty = serializers.FloatField(
        required=False, min_value=REPETITION_PENALTY[0], max_value=REPETITION_PENALTY[1]
    )


class GenerateRequestSerializer(SamplingSerializer):
    prompt = serializers.CharField(allow_blank=False, trim_whitespace=False)


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    content = serializers.CharField(allow_blank=True, trim_whitespace=False)


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
