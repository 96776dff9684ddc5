from rest_framework import serializers

from catalog.models import ModelEntry


class ModelSummarySerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="model_id")
    name = serializers.CharField(source="display_name")
    capabilities = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = ModelEntry
        fields = ["id", "name", "description", "size", "capabilities"]


class ModelListSerializer(serializers.Serializer):
    models = ModelSummarySerializer(many=True)
