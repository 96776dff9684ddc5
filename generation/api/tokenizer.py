"""The model's own tokenizer over HTTP: POST /api/tokenize and /api/detokenize.

For the token ids of `logit_bias`, and to see how long a prompt is before sending it.
The ids are the engine's, from the model's worker (the model is loaded if it is not yet).
"""

from adrf.views import APIView
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from generation.api.native.serializers import (
    DetokenizeRequestSerializer,
    DetokenizeResponseSerializer,
    ErrorSerializer,
    TokenizeRequestSerializer,
    TokenizeResponseSerializer,
)
from generation.api.native.views import ERROR_HEADERS, error_responses
from generation.service import detokenize, tokenize

TOKENIZER_ERRORS = error_responses(ErrorSerializer, (400, 401, 403, 404, 413, 415, 429, 503))


class TokenizeView(APIView):
    @extend_schema(
        summary="Tokenize a text with a model's tokenizer",
        request=TokenizeRequestSerializer,
        responses={200: TokenizeResponseSerializer, **TOKENIZER_ERRORS},
        parameters=ERROR_HEADERS,
        tags=["tokenizer"],
    )
    async def post(self, request):
        serializer = TokenizeRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model_id, tokens = await tokenize(data.get("model"), data["text"], api_key=request.auth)
        return Response({"model": model_id, "tokens": list(tokens), "count": len(tokens)})


class DetokenizeView(APIView):
    @extend_schema(
        summary="The text of token ids, with a model's tokenizer",
        request=DetokenizeRequestSerializer,
        responses={200: DetokenizeResponseSerializer, **TOKENIZER_ERRORS},
        parameters=ERROR_HEADERS,
        tags=["tokenizer"],
    )
    async def post(self, request):
        serializer = DetokenizeRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model_id, text = await detokenize(data.get("model"), data["tokens"], api_key=request.auth)
        return Response({"model": model_id, "text": text})
