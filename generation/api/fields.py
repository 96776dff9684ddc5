"""The typed fields of every API's requests, shared by the native, OpenAI and WebSocket APIs.

DRF's own fields take more than JSON's types ("2" for an integer, 0 for a string); these take
what their schema says, and their schema extensions say what DRF's schema would leave out.
"""

from django.conf import settings
from django.db import DatabaseError
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers

from catalog.selectors import allowed_models

# DRF refuses a NUL character in any CharField ("Null characters are not allowed.").
NO_NUL_PATTERN = "^[^\\u0000]*$"


class TextField(serializers.CharField):
    """A string of a request, and nothing else (DRF's CharField takes 0 as "0"); the schema says that it
    holds no NUL character."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class TextFieldSchema(OpenApiSerializerFieldExtension):
    target_class = TextField

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {**schema, "pattern": NO_NUL_PATTERN}


class IntegerField(serializers.IntegerField):
    """A JSON integer of a request, as the schema says: DRF's IntegerField also takes "2" and true."""

    def to_internal_value(self, data):
        if isinstance(data, (bool, str)):
            self.fail("invalid")
        return super().to_internal_value(data)


class SeedField(IntegerField):
    """A seed: any 64-bit integer, signed or not (-2^63 to 2^64 - 1), which no one 64-bit format covers."""


class SeedFieldSchema(OpenApiSerializerFieldExtension):
    """The seed's range without drf-spectacular's `format: int64`, which would end it at 2^63 - 1."""

    target_class = SeedField

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        schema.pop("format", None)
        return schema


class NumberField(serializers.FloatField):
    """A JSON number of a request, as the schema says: DRF's FloatField also takes "0.5" and true."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class BooleanField(serializers.BooleanField):
    """A JSON boolean of a request, as the schema says: DRF's BooleanField also takes "true", 1 and "yes"."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class MaxTokensField(IntegerField):
    """`max_tokens`: at least 1 and at most LLM_MAX_TOKENS_LIMIT, as the schema says, even where
    another field overrides it (chat's `max_completion_tokens`); the generation core checks the
    value in effect against the admin's lower limit of the model, with a message that names it."""

    def __init__(self, **kwargs):
        super().__init__(required=False, min_value=1, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value > settings.LLM_MAX_TOKENS_LIMIT:
            raise serializers.ValidationError(
                f"{self.field_name} is {value}, over this service's limit of {settings.LLM_MAX_TOKENS_LIMIT}."
            )
        return value


class MaxTokensFieldSchema(OpenApiSerializerFieldExtension):
    """The schema shows this process's LLM_MAX_TOKENS_LIMIT as the maximum (read when the schema is served)."""

    target_class = MaxTokensField

    def map_serializer_field(self, auto_schema, direction):
        return {
            "type": "integer",
            "minimum": 1,
            "maximum": settings.LLM_MAX_TOKENS_LIMIT,
            "description": "Tokens to generate at most; default: the model's or the service's. Over the limit "
            f"(LLM_MAX_TOKENS_LIMIT, {settings.LLM_MAX_TOKENS_LIMIT} here, or the admin's lower limit) is a 400.",
        }


class ModelIdField(TextField):
    """`model`: a catalog id or alias. The schema lists those this service serves now."""


class ModelIdFieldSchema(OpenApiSerializerFieldExtension):
    """The catalog's ids as the schema's enum, read each time the schema is served: Swagger UI
    offers them, and an admin's change shows at the next load of the page."""

    target_class = ModelIdField

    def map_serializer_field(self, auto_schema, direction):
        schema = {**auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True),
                  "pattern": NO_NUL_PATTERN}
        try:
            model_ids = [name for entry in allowed_models() for name in [entry.model_id, *entry.aliases]]
        except DatabaseError:  # no catalog to read (e.g. `manage.py check` before migrations): no list
            return schema
        # In allOf, so that drf-spectacular's enum hook leaves the list inline, per field.
        return {**schema, "allOf": [{"enum": model_ids}]} if model_ids else schema


def optional_within(field_class, bounds: tuple, *, help_text: str):
    """An optional field of a request, its value within `bounds` (min, max: catalog.sampling_ranges')."""
    return field_class(required=False, min_value=bounds[0], max_value=bounds[1], help_text=help_text)


def refuse_nul(text: str) -> str:
    """TextField's rule (DRF's for every CharField), for the fields that take JSON values."""
    if "\x00" in text:
        raise serializers.ValidationError("Null characters are not allowed.")
    return text


TOKEN_ID_MAX = 2**32 - 1  # the engine's token ids are 32-bit
