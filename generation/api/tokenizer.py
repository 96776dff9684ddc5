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


class TokenizerView(APIView):
    # Validates the request with `request_serializer`, answers what `answer` makes of it.
    # (Not a docstring: drf-spectacular would take it for the operations' description.)
    request_serializer = None

    async def post(self, request):
        serializer = self.request_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(await self.answer(serializer.validated_data, api_key=request.auth))

    async def answer(self, data: dict, *, api_key) -> dict:
        raise NotImplementedError


@extend_schema(
    summary="Tokenize a text with a model's tokenizer",
    request=TokenizeRequestSerializer,
    responses={200: TokenizeResponseSerializer, **TOKENIZER_ERRORS},
    parameters=ERROR_HEADERS,
    tags=["tokenizer"],
)
class TokenizeView(TokenizerView):
    request_serializer = TokenizeRequestSerializer

    async def answer(self, data, *, api_key):
        model_id, tokens = await tokenize(data.get("model"), data["text"], api_key=api_key)
        return {"model": model_id, "tokens": list(tokens), "count": len(tokens)}


@extend_schema(
    summary="The text of token ids, with a model's tokenizer",
    request=DetokenizeRequestSerializer,
    responses={200: DetokenizeResponseSerializer, **TOKENIZER_ERRORS},
    parameters=ERROR_HEADERS,
    tags=["tokenizer"],
)
class DetokenizeView(TokenizerView):
    request_serializer = DetokenizeRequestSerializer

    async def answer(self, data, *, api_key):
        model_id, text = await detokenize(data.get("model"), data["tokens"], api_key=api_key)
        return {"model": model_id, "text": text}
