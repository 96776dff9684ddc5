from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.serializers import ModelListSerializer
from generation.native_serializers import ErrorSerializer
from generation.native_views import ERROR_HEADERS, LISTING_ERRORS, error_responses
from generation.service import listed_models


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
                        }
                    ]
                },
                response_only=True,
            )
        ],
        tags=["models"],
    )
    def get(self, request):
        return Response(ModelListSerializer({"models": listed_models()}).data)
