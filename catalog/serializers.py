from rest_framework import serializers

from catalog.models import ModelEntry

# The catalog's capability names as the original service's clients know them.
WIRE_CAPABILITIES = {ModelEntry.Capability.GENERATE: "text-generation", ModelEntry.Capability.CHAT: "chat"}


class CapabilitiesField(serializers.ListField):
    child = serializers.ChoiceField(choices=list(WIRE_CAPABILITIES.values()))

    def to_representation(self, data):
        return [WIRE_CAPABILITIES[capability] for capability in data]


class ModelSummarySerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="model_id")
    name = serializers.CharField(source="display_name")
    capabilities = CapabilitiesField(help_text='"text-generation" (POST /api/generate) and/or "chat" (POST /api/chat).')

    class Meta:
        model = ModelEntry
        fields = ["id", "name", "description", "size", "capabilities"]


class ModelListSerializer(serializers.Serializer):
    models = ModelSummarySerializer(many=True)
