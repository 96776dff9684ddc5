"""Request and response schemas of OpenAI's completions (/v1/completions): a raw continuation of
one prompt or several."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from generation.api.fields import NO_NUL_PATTERN, IntegerField, refuse_nul
from generation.api.openai.serializers import (
    STREAM_DATA,
    ChoiceSerializer,
    ChunkChoiceSerializer,
    OpenAIErrorSerializer,
    OpenAIRequestSerializer,
    ResponseSerializer,
    UsageSerializer,
)
from generation.api.openapi import EventStreamSerializer

# Prompts of one /v1/completions request (LangChain's batch sends several): each a generation, one after the other.
MAX_PROMPTS = 16


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


# --- responses (for the OpenAPI schema) -------------------------------------------------


class CompletionChoiceSerializer(ChoiceSerializer):
    text = serializers.CharField()


class CompletionChunkChoiceSerializer(ChunkChoiceSerializer):
    text = serializers.CharField()


class CompletionResponseSerializer(ResponseSerializer):
    object = serializers.CharField(default="text_completion")
    choices = CompletionChoiceSerializer(many=True)


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


class CompletionStreamEventSerializer(EventStreamSerializer):
    events = (("message", STREAM_DATA, (CompletionChunkSerializer, OpenAIErrorSerializer)),)
