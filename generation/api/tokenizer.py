"""The model's own tokenizer over HTTP: POST /api/tokenize and /api/detokenize.

For the token ids of `logit_bias`, and to see how long a prompt is before sending it.
The ids are the engine's, from the model's worker (the model is loaded if it is not yet).
"""

import functools

from adrf.views import APIView
from rest_framework import serializers
from rest_framework.response import Response

from generation.api.fields import IntegerField, ModelIdField, TextField, TOKEN_ID_MAX
from generation.api.openapi import ERROR_RESPONSES, operation
from generation.core.tokenization import detokenize, tokenize


class TokenizeRequestSerializer(serializers.Serializer):
    model = ModelIdField(
        required=False, allow_blank=False, min_length=1, max_length=200,
        help_text="Catalog id of the model whose tokenizer to use; default: the service's default model.",
    )
    text = TextField(
        allow_blank=True, trim_whitespace=False,
        help_text="Text to tokenize, as is: no BOS token is added; special tokens written as text (e.g. "
        "`<|im_start|>`) are parsed as such.",
    )


class TokenizeResponseSerializer(serializers.Serializer):
    model = serializers.CharField()
    tokens = serializers.ListField(child=serializers.IntegerField(), help_text="The token ids.")
    count = serializers.IntegerField(help_text="How many tokens.")


class DetokenizeRequestSerializer(serializers.Serializer):
    model = ModelIdField(
        required=False, allow_blank=False, min_length=1, max_length=200,
        help_text="Catalog id of the model whose tokenizer to use; default: the service's default model.",
    )
    tokens = serializers.ListField(
        child=IntegerField(min_value=0, max_value=TOKEN_ID_MAX), max_length=100_000,
        help_text="Token ids; an id beyond the vocabulary has no text.",
    )


class DetokenizeResponseSerializer(serializers.Serializer):
    model = serializers.CharField()
    text = serializers.CharField(allow_blank=True, help_text="The ids' text, special tokens included.")


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


tokenizer_operation = functools.partial(operation, errors=ERROR_RESPONSES, tags=["tokenizer"])


@tokenizer_operation(summary="Tokenize a text with a model's tokenizer", responses={200: TokenizeResponseSerializer})
class TokenizeView(TokenizerView):
    request_serializer = TokenizeRequestSerializer

    async def answer(self, data, *, api_key):
        model_id, tokens = await tokenize(data.get("model"), data["text"], api_key=api_key)
        return {"model": model_id, "tokens": list(tokens), "count": len(tokens)}


@tokenizer_operation(
    summary="The text of token ids, with a model's tokenizer", responses={200: DetokenizeResponseSerializer}
)
class DetokenizeView(TokenizerView):
    request_serializer = DetokenizeRequestSerializer

    async def answer(self, data, *, api_key):
        model_id, text = await detokenize(data.get("model"), data["tokens"], api_key=api_key)
        return {"model": model_id, "text": text}
