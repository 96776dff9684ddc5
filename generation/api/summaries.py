"""The catalog's models as clients see them: GET /api/models lists these, GET /v1/models adds
them to OpenAI's model objects, and the admin's playground shows their defaults."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.models import ModelEntry, ServiceSettings
from catalog.selectors import servable_model
from generation.core.service import engine_cache

# The catalog's capability names as the original service's clients know them.
WIRE_CAPABILITIES = {ModelEntry.Capability.GENERATE: "text-generation", ModelEntry.Capability.CHAT: "chat"}


class CapabilitiesField(serializers.ListField):
    child = serializers.ChoiceField(choices=list(WIRE_CAPABILITIES.values()))

    def to_representation(self, data):
        return [WIRE_CAPABILITIES[capability] for capability in data]


class SamplingDefaultsSerializer(serializers.Serializer):
    # The parameters of a model's defaults (SamplingParams) that can have one.
    temperature = serializers.FloatField()
    max_tokens = serializers.IntegerField()
    top_p = serializers.FloatField(allow_null=True)
    top_k = serializers.IntegerField(allow_null=True)
    repetition_penalty = serializers.FloatField(allow_null=True)


class ModelSummarySerializer(serializers.ModelSerializer):
    """A catalog entry as clients see it."""

    # Context: `servable` (model id -> its ServableModel, with the defaults and limits in effect)
    # and `context_lengths` (model id -> the context of the models loaded in this process).
    id = serializers.CharField(source="model_id")
    name = serializers.CharField(source="display_name")
    capabilities = CapabilitiesField(help_text='"text-generation" (POST /api/generate) and/or "chat" (POST /api/chat).')
    context_length = serializers.SerializerMethodField(
        help_text="Tokens of context (prompt and output): the catalog's, else the model file's once the model "
        "is loaded; null until then."
    )
    defaults = serializers.SerializerMethodField(
        help_text="What a request that leaves a sampling parameter out gets (the model's, the service's or the "
        "environment's default); null: the parameter is off."
    )
    max_tokens_limit = serializers.SerializerMethodField(help_text="The largest max_tokens a request may ask for.")
    aliases = serializers.ListField(
        child=serializers.CharField(), help_text="Short names a request may send as `model` instead of the id."
    )

    class Meta:
        model = ModelEntry
        fields = ["id", "aliases", "name", "description", "size", "capabilities", "context_length", "defaults",
                  "max_tokens_limit"]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_context_length(self, entry) -> int | None:
        return entry.context_length or self.context["context_lengths"].get(entry.model_id)

    @extend_schema_field(SamplingDefaultsSerializer)
    def get_defaults(self, entry) -> dict:
        return SamplingDefaultsSerializer(self.context["servable"][entry.model_id].defaults).data

    @extend_schema_field(serializers.IntegerField())
    def get_max_tokens_limit(self, entry) -> int:
        return self.context["servable"][entry.model_id].max_tokens_limit


def model_summaries(models: list) -> list[dict]:
    """Catalog entries as ModelSummarySerializer describes them."""
    service = ServiceSettings.load()
    context = {
        "servable": {entry.model_id: servable_model(entry, service) for entry in models},
        "context_lengths": {entry.model_id: engine_cache().context_length(entry.model_id) for entry in models},
    }
    return ModelSummarySerializer(models, many=True, context=context).data
