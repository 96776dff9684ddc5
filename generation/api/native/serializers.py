"""Response schemas of the native API (/api/generate, /api/chat, /api/models), for the OpenAPI
schema, which tests/e2e/test_schema_fuzz.py holds to what the server really does. Its requests are
generation.api.native_format's, which the WebSocket takes too.
"""

from rest_framework import serializers

from generation.api.openapi import ErrorSerializer, EventStreamSerializer
from generation.api.summaries import ModelSummarySerializer


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


class ModelListSerializer(serializers.Serializer):
    models = ModelSummarySerializer(many=True)
