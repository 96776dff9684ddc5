"""The native wire format, shared by the native HTTP API (/api/generate, /api/chat) and the
WebSocket (/ws/generate/): its requests, validated, as the core's, and the usage fields of its answers.

The one place where the native wire format's names meet the core's: `format` is the core's
`json_schema`; the other fields have the same names on both sides.
"""

import json

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.sampling import SamplingParams
from generation.api.fields import TextField
from generation.api.sampling import JSON_OBJECT_SCHEMA, SamplingSerializer
from generation.engine.types import Finished
from generation.core.service import Generation
from generation.core.request import GenerationRequest


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


# The core's names of request fields -> the native API's, for the `field` of an error.
WIRE_FIELDS = {"json_schema": "format"}


def to_generation_request(validated: dict, *, endpoint: str, api_key=None) -> GenerationRequest:
    """A native request, as GenerateRequestSerializer or ChatRequestSerializer validated it."""
    messages = validated.get("messages")
    return GenerationRequest(
        model=validated.get("model"),
        prompt=validated.get("prompt"),
        messages=None if messages is None else tuple(
            {"role": message["role"], "content": message["content"]} for message in messages
        ),
        sampling=SamplingParams(
            max_tokens=validated.get("max_tokens"),
            temperature=validated.get("temperature"),
            top_p=validated.get("top_p"),
            top_k=validated.get("top_k"),
            repetition_penalty=validated.get("repetition_penalty"),
            stop=tuple(validated.get("stop", ())),
            json_schema=validated.get("format"),  # FormatField made it the schema's text
        ),
        endpoint=endpoint,
        api_key=api_key,
    )


def native_finish_reason(generation: Generation, finished: Finished) -> str:
    """The engine's finish reason in the native API's words. The engine says "stop" when the
    model ended its text (its EOS token or end-of-turn marker) too: with no stop sequence of the
    client's, that is the end the native API (as the original service) calls "eos"."""
    if finished.finish_reason == "stop" and not generation.client_stops:
        return "eos"
    return finished.finish_reason


def usage_fields(generation: Generation, finished: Finished) -> dict:
    """How a generation ended, in every native answer: the JSON one, the stream's `done` event and message."""
    return {
        "model": generation.model_id,
        "tokens_generated": finished.completion_tokens,
        "prompt_tokens": finished.prompt_tokens,
        "finish_reason": native_finish_reason(generation, finished),
    }
