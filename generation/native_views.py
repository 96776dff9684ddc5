"""The native API: /api/generate, /api/chat and their SSE streams.

A thin translation: parse with a serializer, prepare a generation with the core, shape
the output. Errors are raised and mapped once, in generation.api_errors.
"""

import json
from collections.abc import AsyncIterator

from adrf.views import APIView
from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.response import Response

from generation.api_errors import error_body
from generation.engine import Finished, TextDelta
from generation.errors import ServiceError
from generation.native_serializers import (
    ChatRequestSerializer,
    ChatResponseSerializer,
    ErrorSerializer,
    GenerateRequestSerializer,
    GenerateResponseSerializer,
)
from generation.service import Generation, GenerationRequest, prepare_generation
from generation.sse import KEEPALIVE, KEEPALIVE_COMMENT, event_stream_response, sse_event, with_keepalive

ERROR_RESPONSES = {
    status: OpenApiResponse(ErrorSerializer, description=description)
    for status, description in {
        400: "Invalid request: a parameter out of range, an empty prompt, a prompt over the context.",
        403: "The model exists but is not allowed.",
        404: "No such model.",
        413: "Request body too large.",
        415: "Content type is not application/json.",
        429: "Too many generations in flight; see Retry-After.",
        503: "The model could not be loaded, or the engine failed.",
    }.items()
}

SSE_DESCRIPTION = (
    "Server-Sent Events. Each text delta is one event whose data is the text itself "
    "(text with line breaks spans several `data:` lines). A final `event: done` carries JSON "
    "`{finish_reason, tokens_generated, prompt_tokens}`; a failure after the stream started is an "
    "`event: error` with JSON `{error: {code, message}}`. Comment lines keep an idle stream open."
)

GENERATE_EXAMPLE = OpenApiExample(
    "Greedy continuation",
    value={"prompt": "The capital of France is", "max_tokens": 16, "temperature": 0},
    request_only=True,
)
CHAT_EXAMPLE = OpenApiExample(
    "One question",
    value={"messages": [{"role": "user", "content": "Name a primary colour."}], "max_tokens": 32},
    request_only=True,
)


def usage_fields(generation: Generation, finished: Finished) -> dict:
    return {
        "model": generation.model_id,
        "tokens_generated": finished.completion_tokens,
        "prompt_tokens": finished.prompt_tokens,
        "finish_reason": finished.finish_reason,
    }


async def native_sse(generation: Generation) -> AsyncIterator[bytes]:
    async for event in with_keepalive(generation.events(), settings.LLM_SSE_KEEPALIVE_SECONDS):
        if event is KEEPALIVE:
            yield KEEPALIVE_COMMENT
        elif isinstance(event, TextDelta):
            yield sse_event(event.text)
        else:
            yield sse_event(json.dumps(usage_fields(generation, event)), event="done")


def native_error_event(exc: ServiceError) -> bytes:
    return sse_event(json.dumps(error_body(exc.code, exc.message)), event="error")


class NativeGenerationView(APIView):
    request_serializer = None
    streaming = False
    endpoint = ""  # the name metrics and traces know this view by

    async def post(self, request):
        serializer = self.request_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        generation = await prepare_generation(
            GenerationRequest.from_validated(serializer.validated_data, endpoint=self.endpoint, api_key=request.auth)
        )
        if self.streaming:
            return event_stream_response(native_sse(generation), native_error_event)
        text, finished = await generation.collect()
        return Response(self.response_body(text, usage_fields(generation, finished)))

    def response_body(self, text: str, usage: dict) -> dict:
        raise NotImplementedError


class GenerateView(NativeGenerationView):
    request_serializer = GenerateRequestSerializer
    endpoint = "generate"

    @extend_schema(
        summary="Continue a prompt",
        description="A raw continuation of the prompt (no chat template).",
        request=GenerateRequestSerializer,
        responses={200: GenerateResponseSerializer, **ERROR_RESPONSES},
        examples=[GENERATE_EXAMPLE],
        tags=["generation"],
    )
    async def post(self, request):
        return await super().post(request)

    def response_body(self, text, usage):
        return {"text": text, **usage}


class GenerateStreamView(GenerateView):
    streaming = True
    endpoint = "generate_stream"

    @extend_schema(
        summary="Continue a prompt, streamed",
        description=SSE_DESCRIPTION,
        request=GenerateRequestSerializer,
        responses={(200, "text/event-stream"): OpenApiTypes.STR, **ERROR_RESPONSES},
        examples=[GENERATE_EXAMPLE],
        tags=["generation"],
    )
    async def post(self, request):
        return await super().post(request)


class ChatView(NativeGenerationView):
    request_serializer = ChatRequestSerializer
    endpoint = "chat"

    @extend_schema(
        summary="Chat",
        description="The messages are rendered with the model's chat template; the reply is the assistant's turn.",
        request=ChatRequestSerializer,
        responses={200: ChatResponseSerializer, **ERROR_RESPONSES},
        examples=[CHAT_EXAMPLE],
        tags=["generation"],
    )
    async def post(self, request):
        return await super().post(request)

    def response_body(self, text, usage):
        return {"message": {"role": "assistant", "content": text}, **usage}


class ChatStreamView(ChatView):
    streaming = True
    endpoint = "chat_stream"

    @extend_schema(
        summary="Chat, streamed",
        description=SSE_DESCRIPTION,
        request=ChatRequestSerializer,
        responses={(200, "text/event-stream"): OpenApiTypes.STR, **ERROR_RESPONSES},
        examples=[CHAT_EXAMPLE],
        tags=["generation"],
    )
    async def post(self, request):
        return await super().post(request)
