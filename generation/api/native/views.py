"""The native API: /api/generate, /api/chat and their SSE streams.

A thin translation: parse with a serializer, prepare a generation with the core, shape
the output. Errors are raised and mapped once, in generation.api.errors.
"""

import functools
import json
from collections.abc import AsyncIterator

from adrf.views import APIView
from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework.response import Response
from rest_framework.views import APIView as SyncAPIView

from common.errors import ServiceError
from generation.api.errors import error_body
from generation.api.generation_view import GenerationViewMixin
from generation.api.native.serializers import (
    ChatResponseSerializer,
    GenerateResponseSerializer,
    ModelListSerializer,
    NativeStreamEventSerializer,
)
from generation.api.native_format import (
    WIRE_FIELDS,
    ChatRequestSerializer,
    GenerateRequestSerializer,
    to_generation_request,
    usage_fields,
)
from generation.api.openapi import (
    ERROR_RESPONSES,
    LISTING_ERRORS,
    ErrorSerializer,
    error_responses,
    example_max_tokens,
    operation,
)
from generation.api.sse import KEEPALIVE, KEEPALIVE_COMMENT, event_stream_response, sse_event, with_keepalive
from generation.api.summaries import model_summaries
from generation.engine.types import TextDelta
from generation.core.service import Generation, listed_models

SSE_DESCRIPTION = (
    "Server-Sent Events (`text/event-stream`). Each text delta is one event whose data is the text itself "
    "(text with line breaks spans several `data:` lines). A final `event: done` carries JSON "
    "`{model, finish_reason, tokens_generated, prompt_tokens}`; a failure after the stream started is an "
    "`event: error` with JSON `{error: {code, message}}`. Comment lines keep an idle stream open. "
    "The schema of the 200 response is that of one event. Errors before the stream starts are JSON."
)
SSE_RESPONSES = {
    (200, "text/event-stream"): OpenApiResponse(
        NativeStreamEventSerializer, description="Server-Sent Events: text deltas, then done."
    )
}

GENERATE_EXAMPLE = OpenApiExample(
    "Greedy continuation",
    value={"prompt": "The capital of France is", "max_tokens": example_max_tokens(16), "temperature": 0},
    request_only=True,
)
CHAT_EXAMPLE = OpenApiExample(
    "One question",
    value={"messages": [{"role": "user", "content": "Name a primary colour."}], "max_tokens": example_max_tokens(32)},
    request_only=True,
)


async def native_sse(generation: Generation) -> AsyncIterator[bytes]:
    """An event per text delta, then `done`; the events of deltas that arrived together in one write."""
    def event_of(event) -> bytes:
        if isinstance(event, TextDelta):
            return sse_event(event.text)
        return sse_event(json.dumps(usage_fields(generation, event)), event="done")

    async for batch in with_keepalive(generation.batches(), settings.LLM_SSE_KEEPALIVE_SECONDS):
        yield KEEPALIVE_COMMENT if batch is KEEPALIVE else b"".join(map(event_of, batch))


def native_error_event(exc: ServiceError) -> bytes:
    return sse_event(json.dumps(error_body(exc.code, exc.message)), event="error")


class NativeGenerationView(GenerationViewMixin, APIView):
    request_serializer = None
    streaming = False
    wire_fields = WIRE_FIELDS

    async def post(self, request):
        serializer = self.request_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        generation = await self.prepare(
            to_generation_request(serializer.validated_data, endpoint=self.endpoint, api_key=request.auth)
        )
        if self.streaming:
            return event_stream_response(native_sse(generation), native_error_event)
        text, finished, _ = await generation.collect()
        return Response(self.response_body(text, usage_fields(generation, finished)))

    def response_body(self, text: str, usage: dict) -> dict:
        raise NotImplementedError


generation_operation = functools.partial(operation, errors=ERROR_RESPONSES, tags=["generation"])


@generation_operation(
    summary="Continue a prompt",
    description="A raw continuation of the prompt (no chat template).",
    responses={200: GenerateResponseSerializer},
    examples=[GENERATE_EXAMPLE],
)
class GenerateView(NativeGenerationView):
    request_serializer = GenerateRequestSerializer
    endpoint = "generate"

    def response_body(self, text, usage):
        return {"text": text, **usage}


@generation_operation(
    summary="Continue a prompt, streamed", description=SSE_DESCRIPTION, responses=SSE_RESPONSES,
    examples=[GENERATE_EXAMPLE],
)
class GenerateStreamView(GenerateView):
    streaming = True
    endpoint = "generate_stream"


@generation_operation(
    summary="Chat",
    description="The messages are rendered with the model's chat template; the reply is the assistant's turn.",
    responses={200: ChatResponseSerializer},
    examples=[CHAT_EXAMPLE],
)
class ChatView(NativeGenerationView):
    request_serializer = ChatRequestSerializer
    endpoint = "chat"

    def response_body(self, text, usage):
        return {"message": {"role": "assistant", "content": text}, **usage}


@generation_operation(
    summary="Chat, streamed", description=SSE_DESCRIPTION, responses=SSE_RESPONSES, examples=[CHAT_EXAMPLE]
)
class ChatStreamView(ChatView):
    streaming = True
    endpoint = "chat_stream"


class ModelListView(SyncAPIView):  # sync: it reads the catalog with the ORM, in a thread
    @operation(
        summary="List the models this service serves",
        responses={200: ModelListSerializer},
        errors=error_responses(ErrorSerializer, LISTING_ERRORS),
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
        return Response({"models": model_summaries(listed_models())})
