"""The native API: /api/generate, /api/chat and their SSE streams.

A thin translation: parse with a serializer, prepare a generation with the core, shape
the output. Errors are raised and mapped once, in generation.api.errors.
"""

import json
from collections.abc import AsyncIterator

from adrf.views import APIView
from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView as SyncAPIView

from catalog.models import ServiceSettings
from catalog.selectors import servable_model
from common.errors import ServiceError
from generation.api.errors import error_body
from generation.engine.types import Finished, TextDelta
from generation.api.generation_view import GenerationViewMixin
from generation.api.native.serializers import (
    ChatRequestSerializer,
    ChatResponseSerializer,
    ErrorSerializer,
    GenerateRequestSerializer,
    GenerateResponseSerializer,
    ModelListSerializer,
    NativeStreamEventSerializer,
)
from generation.api.native.translation import WIRE_FIELDS, to_generation_request
from generation.service import Generation, engine_cache, listed_models
from generation.api.sse import KEEPALIVE, KEEPALIVE_COMMENT, event_stream_response, sse_event, with_keepalive

ERROR_DESCRIPTIONS = {
    400: "Invalid JSON or parameter: out of range, an empty prompt or messages, `max_tokens` over the limit, "
    "a prompt longer than the model's context or the API key's tokens per minute.",
    401: "No API key where LLM_REQUIRE_API_KEY is on, or a key that is unknown or revoked.",
    403: "The model exists but is not allowed (disabled, outside LLM_ALLOWED_MODELS or the API key's models).",
    404: "No such model.",
    413: "Request body over LLM_MAX_REQUEST_BYTES.",
    415: "Content type other than application/json.",
    429: "Too many generations in flight (`overloaded`), or the API key is over a limit (`rate_limited`).",
    503: "The model could not be loaded, the engine failed, or the database is unavailable.",
}


def error_responses(serializer, statuses, descriptions=None) -> dict:
    """The documented errors of an operation, in its API's error shape."""
    descriptions = {**ERROR_DESCRIPTIONS, **(descriptions or {})}
    return {status: OpenApiResponse(serializer, description=descriptions[status]) for status in statuses}


GENERATION_ERRORS = (400, 401, 403, 404, 413, 415, 429, 503)
LISTING_ERRORS = (401, 503)
ERROR_RESPONSES = error_responses(ErrorSerializer, GENERATION_ERRORS)

# Headers of the error responses, on every API operation.
ERROR_HEADERS = [
    OpenApiParameter(
        "Retry-After",
        int,
        location=OpenApiParameter.HEADER,
        response=[429],
        required=True,
        description="Seconds to wait before retrying.",
    ),
    OpenApiParameter(
        "WWW-Authenticate",
        str,
        location=OpenApiParameter.HEADER,
        response=[401],
        required=True,
        description='`Bearer realm="api"`: send `Authorization: Bearer <key>`.',
    ),
]

SSE_DESCRIPTION = (
    "Server-Sent Events (`text/event-stream`). Each text delta is one event whose data is the text itself "
    "(text with line breaks spans several `data:` lines). A final `event: done` carries JSON "
    "`{model, finish_reason, tokens_generated, prompt_tokens}`; a failure after the stream started is an "
    "`event: error` with JSON `{error: {code, message}}`. Comment lines keep an idle stream open. "
    "The schema of the 200 response is that of one event. Errors before the stream starts are JSON."
)
SSE_RESPONSE = OpenApiResponse(NativeStreamEventSerializer, description="Server-Sent Events: text deltas, then done.")


def example_max_tokens(tokens: int) -> int:
    """`max_tokens` in an example, within this process's limit: an example must be valid."""
    return min(tokens, settings.LLM_MAX_TOKENS_LIMIT)


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


class GenerateView(NativeGenerationView):
    request_serializer = GenerateRequestSerializer
    endpoint = "generate"

    @extend_schema(
        summary="Continue a prompt",
        description="A raw continuation of the prompt (no chat template).",
        request=GenerateRequestSerializer,
        responses={200: GenerateResponseSerializer, **ERROR_RESPONSES},
        parameters=ERROR_HEADERS,
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
        responses={(200, "text/event-stream"): SSE_RESPONSE, **ERROR_RESPONSES},
        parameters=ERROR_HEADERS,
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
        parameters=ERROR_HEADERS,
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
        responses={(200, "text/event-stream"): SSE_RESPONSE, **ERROR_RESPONSES},
        parameters=ERROR_HEADERS,
        examples=[CHAT_EXAMPLE],
        tags=["generation"],
    )
    async def post(self, request):
        return await super().post(request)


class ModelListView(SyncAPIView):  # sync: it reads the catalog with the ORM, in a thread
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
        return Response({"models": model_summaries(listed_models())})


def model_summaries(models: list) -> list[dict]:
    """Catalog entries as the native list describes them (the OpenAI list adds these too)."""
    service = ServiceSettings.load()
    context = {
        "servable": {entry.model_id: servable_model(entry, service) for entry in models},
        "context_lengths": {entry.model_id: engine_cache().context_length(entry.model_id) for entry in models},
    }
    return ModelListSerializer({"models": models}, context=context).data["models"]
