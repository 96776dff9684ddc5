"""The sampling parameters of a request, as every API's request serializer takes them."""

import json

from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers

from catalog.sampling_ranges import (
    REPETITION_PENALTY,
    SEED,
    STOP_SEQUENCE_MAX_CHARS,
    TEMPERATURE,
    TOP_K,
    TOP_P,
)
from generation.api.fields import (
    IntegerField,
    MaxTokensField,
    ModelIdField,
    NumberField,
    SeedField,
    TextField,
    optional_within,
)

MODEL_DEFAULT = "default: the model's default (set in the admin), else the service's"


class SamplingSerializer(serializers.Serializer):
    # min_length: the schema's minLength (an empty string is refused as blank before it applies).
    model = ModelIdField(
        required=False,
        allow_blank=False,
        min_length=1,
        max_length=200,
        help_text="Catalog id of the model, or one of its aliases (GET /api/models lists them); default: the "
        "service's default model.",
    )
    temperature = optional_within(
        NumberField, TEMPERATURE,
        help_text=f"Sampling temperature, {TEMPERATURE[0]:g} to {TEMPERATURE[1]:g}; 0 is greedy (the most likely "
        f"token each time); {MODEL_DEFAULT}.",
    )
    top_p = optional_within(
        NumberField, TOP_P,
        help_text=f"Nucleus sampling: only the most likely tokens whose probabilities add up to this, "
        f"{TOP_P[0]:g} to {TOP_P[1]:g}; {MODEL_DEFAULT} (none: every token).",
    )
    top_k = optional_within(
        IntegerField, TOP_K,
        help_text=f"Only the k most likely tokens, {TOP_K[0]} to {TOP_K[1]:,}; {MODEL_DEFAULT} (none: every token).",
    )
    max_tokens = MaxTokensField()
    stop = serializers.ListField(
        child=TextField(allow_blank=False, trim_whitespace=False, min_length=1, max_length=STOP_SEQUENCE_MAX_CHARS),
        required=False,
        max_length=8,
        help_text=f"Up to 8 strings (1 to {STOP_SEQUENCE_MAX_CHARS} characters each) that end the text where they "
        "appear, themselves left out; added to the model's own stop sequences.",
    )
    seed = optional_within(
        SeedField, SEED,
        help_text="Accepted for compatibility (a 64-bit integer) and ignored: sampling seeds are set per model "
        "in the catalog.",
    )
    repetition_penalty = optional_within(
        NumberField, REPETITION_PENALTY,
        help_text=f"Penalty on tokens already in the text, {REPETITION_PENALTY[0]:g} to {REPETITION_PENALTY[1]:g}; "
        f"1 is none, above 1 repeats less; {MODEL_DEFAULT} (none).",
    )


class SamplingRequestSchema(OpenApiSerializerExtension):
    """What the fields alone do not tell drf-spectacular: a list that may not be empty."""

    target_class = SamplingSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        for name, field in self.target.fields.items():
            if isinstance(field, serializers.ListSerializer) and not field.allow_empty:
                schema["properties"][name]["minItems"] = 1
        return schema


# The schema of "any JSON object" (native `format: "json"`, OpenAI `response_format: json_object`).
JSON_OBJECT_SCHEMA = json.dumps({"type": "object"})
