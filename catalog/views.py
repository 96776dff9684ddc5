from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.models import ServiceSettings
from catalog.serializers import ModelListSerializer
from generation.native_serializers import ErrorSerializer
from generation.native_views import ERROR_HEADERS, LISTING_ERRORS, error_responses
from generation.service import engine_cache, listed_models


class ModelListView(APIView):
    @extend_schema(
        summary="List the models this service serves",
        responses={200: ModelListSerializer, **error_responses(ErrorSerializer, LISTING_ERRORS)},
        parameters=ERROR_HEADERS,
        examples=[
            OpenApiExample(
                "Bundled model",
                value={
                    "models": [
                        {
                            "id": "google/gemma-3-270m",
                            "name": "Gemma 3 270M",
                            "description": "Gemma 3 270M base, GGUF Q4_K_M.",
                            "size": "270M",
                            "capabilities": ["text-generation", "chat"],
                            "context_length": 32768,
                            "defaults": {"temperature": 0.7, "max_tokens": 512, "top_p": None, "top_k": None,
                                         "repetition_penalty": None},
                            "max_tokens_limit": 4096,
                        }
                    ]
                },
                response_only=True,
            )
        ],
        tags=["models"],
    )
    def get(self, request):
        models = listed_models()
        context = {
            "service": ServiceSettings.load(),
            "context_lengths": {entry.model_id: engine_cache().context_length(entry.model_id) for entry in models},
        }
        return Response(ModelListSerializer({"models": models}, context=context).data)
