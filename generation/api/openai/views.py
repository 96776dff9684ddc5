"""The OpenAI-compatible API: /v1/completions, /v1/chat/completions (/v1/models: model_views).

A thin translation onto the same generation core as the native API (catalog, allowlist,
limits, engine): parse OpenAI's request, prepare a generation, shape OpenAI's response,
streamed as `data: {chunk}` events ending with `data: [DONE]`. Errors take OpenAI's
shape, `{"error": {"message", "type", "param", "code"}}`, which its SDKs turn into their
error classes by status code.
"""

import dataclasses
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator

from adrf.views import APIView
from django.conf import settings
from drf_spectacular.utils import OpenApiExample
from rest_framework.response import Response

from common.errors import ServiceError
from generation.api.errors import describe_exception, openai_error_body, render_openai
from generation.api.generation_view import GenerationViewMixin
from generation.api.openai import translation
from generation.api.openai.chat_serializers import (
    ChatCompletionRequestSerializer,
    ChatCompletionResponseSerializer,
    ChatCompletionStreamEventSerializer,
)
from generation.api.openai.completions_serializers import (
    CompletionRequestSerializer,
    CompletionResponseSerializer,
    CompletionStreamEventSerializer,
)
from generation.api.openai.serializers import OpenAIErrorSerializer
from generation.api.openapi import GENERATION_ERRORS, error_responses, example_max_tokens, json_or_stream, operation
from generation.api.sse import KEEPALIVE, KEEPALIVE_COMMENT, event_stream_response, sse_event, with_keepalive
from generation.engine.types import Finished, TextDelta, TokenLogprob
from generation.core.service import Generation
from generation.core.request import GenerationRequest
from generation.core.tool_calls import ToolCallsDelta, ToolPlan, as_openai, parse_output, stream_deltas

DONE = sse_event("[DONE]")


def openai_exception_handler(exc, context):
    error = describe_exception(exc, context)
    return render_openai(error) if error is not None else None


def openai_finish_reason(finished: Finished) -> str:
    # The engine's reasons are OpenAI's ("stop": the model ended its text, or a stop sequence
    # matched); chat's "tool_calls" is set by its view; anything else the engine may say is a "stop".
    return finished.finish_reason if finished.finish_reason in ("length", "tool_calls") else "stop"


def usage(choices: list[Finished], n: int) -> dict:
    """Each prompt once (its `n` choices share it, as OpenAI counts), the completions summed.

    `prompt_tokens_details.cached_tokens`: the prompt tokens the engine's prefix cache gave
    instead of prefilling them (a chat's history, from its second turn on).
    """
    prompt_tokens = sum(finished.prompt_tokens for finished in choices[::n])
    completion_tokens = sum(finished.completion_tokens for finished in choices)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": sum(finished.cached_prompt_tokens for finished in choices[::n])},
    }


ERROR_RESPONSES = error_responses(
    OpenAIErrorSerializer,
    GENERATION_ERRORS,
    {
        400: "Invalid JSON, or an invalid or unsupported parameter (`param` names it): out of range, an empty "
        "prompt or messages, `max_tokens` over the limit, a prompt longer than the model's context or the API "
        "key's tokens per minute.",
    },
)


class OpenAIView(APIView):
    def get_exception_handler(self):
        return openai_exception_handler


class OpenAIGenerationView(GenerationViewMixin, OpenAIView):
    """One request in, a completion or a stream of chunks out; subclasses give the wire format."""

    request_serializer = None
    translate = None  # validated request -> the core's GenerationRequest, from .translation
    id_prefix = ""
    object_name = ""
    chunk_object_name = ""

    def first_chunk_choices(self, index: int) -> list[dict]:
        return []

    def choice(self, index: int, text: str, finish_reason: str | None, logprobs: dict | None) -> dict:
        raise NotImplementedError

    def chunk_choice(self, index: int, text: str, finish_reason: str | None, logprobs: dict | None) -> dict:
        raise NotImplementedError

    def logprobs_body(self, logprobs: list[TokenLogprob], text_offset: int) -> dict:
        """The tokens' logprobs in this API's shape; `text_offset`: where their text starts in the completion."""
        raise NotImplementedError

    def core_requests(self, data: dict, api_key) -> list[GenerationRequest]:
        """The core's requests of one request: one, unless its API takes several prompts."""
        return [self.translate(data, endpoint=self.endpoint, api_key=api_key)]

    async def post(self, request):
        serializer = self.request_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        self.wire_fields = translation.wire_fields(data)
        # `n` choices of each prompt are n generations, all one after the other: on CPU,
        # decoding several sequences at once gains nothing, and each holds a concurrency slot
        # only while it runs (n slots at once could wait on each other). The first is
        # prepared before the response starts, so that its refusal is a JSON error.
        n = data.get("n", 1)
        plan = [core_request for core_request in self.core_requests(data, request.auth) for _ in range(n)]
        first = await self.prepare(plan[0])
        header = {"id": f"{self.id_prefix}-{uuid.uuid4().hex}", "created": int(time.time()), "model": first.model_id}
        with_logprobs = plan[0].sampling.top_logprobs is not None
        if data["stream"]:
            include_usage = data.get("stream_options", {}).get("include_usage", False)
            return event_stream_response(
                self.chunks(first, plan, n, header, include_usage, with_logprobs),
                functools.partial(openai_error_event, wire_fields=self.wire_fields),
            )
        choices, finals = [], []
        for index, core_request in enumerate(plan):
            generation = first if index == 0 else await self.prepare(core_request)
            text, finished, logprobs = await generation.collect()
            logprobs_body = self.logprobs_body(logprobs, 0) if with_logprobs else None
            choices.append(self.choice(index, text, openai_finish_reason(finished), logprobs_body))
            finals.append(finished)
        return Response({**header, "object": self.object_name, "choices": choices, "usage": usage(finals, n)})

    async def chunks(
        self,
        first: Generation,
        plan: list[GenerationRequest],  # a request per choice, in the choices' order
        n: int,
        header: dict,
        include_usage: bool,
        with_logprobs: bool,
    ) -> AsyncIterator[bytes]:
        def chunk(choices: list[dict], **extra) -> bytes:
            body = {**header, "object": self.chunk_object_name, "choices": choices, **extra}
            if include_usage:  # OpenAI's clients expect the key on every chunk once usage is asked for
                body.setdefault("usage", None)
            return sse_event(json.dumps(body))

        finals = []
        for index, core_request in enumerate(plan):
            generation = first if index == 0 else await self.prepare(core_request)
            if opening := self.first_chunk_choices(index):
                yield chunk(opening)
            text_offset = 0

            def chunk_of(event) -> bytes:
                nonlocal text_offset
                if isinstance(event, ToolCallsDelta):
                    delta = {"tool_calls": event.tool_calls}
                    return chunk([{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}])
                if isinstance(event, TextDelta):
                    logprobs = [event.logprob] if event.logprob is not None else []
                    logprobs_body = self.logprobs_body(logprobs, text_offset) if with_logprobs else None
                    text_offset += len(event.text)
                    return chunk([self.chunk_choice(index, event.text, None, logprobs_body)])
                finals.append(event)
                return chunk([self.chunk_choice(index, "", openai_finish_reason(event), None)])

            # A chunk per event; the chunks of events that arrived together in one write.
            async for batch in with_keepalive(self.batches_of(generation), settings.LLM_SSE_KEEPALIVE_SECONDS):
                yield KEEPALIVE_COMMENT if batch is KEEPALIVE else b"".join(map(chunk_of, batch))
        if include_usage:
            yield chunk([], usage=usage(finals, n))
        yield DONE

    def batches_of(self, generation: Generation) -> AsyncIterator[list]:
        """The generation's events as this API streams them, in lists of those that arrived together."""
        return generation.batches()


def openai_error_event(exc: ServiceError, *, wire_fields: dict[str, str]) -> bytes:
    """An error after the stream started: a `data: {error}` event, as OpenAI's clients expect."""
    error = describe_exception(exc, {})
    error = dataclasses.replace(error, field=wire_fields.get(error.field, error.field))
    return sse_event(json.dumps(openai_error_body(error)))


COMPLETION_EXAMPLE = OpenApiExample(
    "Greedy continuation",
    value={
        "model": "google/gemma-3-270m",
        "prompt": "The capital of France is",
        "max_tokens": example_max_tokens(16),
        "temperature": 0,
    },
    request_only=True,
)
CHAT_EXAMPLE = OpenApiExample(
    "One question, streamed with usage",
    value={
        "model": "google/gemma-3-270m",
        "messages": [{"role": "user", "content": "Name a primary colour."}],
        "max_completion_tokens": example_max_tokens(32),
        "stream": True,
        "stream_options": {"include_usage": True},
    },
    request_only=True,
)
STREAM_DESCRIPTION = (
    " The answer is `application/json` unless `stream` is true; with `stream: true` it is `text/event-stream`: "
    "one `data: {chunk}` event per text delta, a chunk with the `finish_reason`, a usage chunk (empty `choices`) "
    "when `stream_options.include_usage`, then `data: [DONE]`. An error after the stream started is a "
    "`data: {error}` event. The schema of the `text/event-stream` response is that of one event. "
    "Errors before the stream starts are JSON."
)
generation_operation = functools.partial(operation, errors=ERROR_RESPONSES, tags=["openai"])


def completion_operation(summary: str, description: str, answer: str, response, stream_event, example):
    """The operation of a completions endpoint: its `answer` as JSON, or chunks with `stream: true`."""
    return generation_operation(
        summary=summary,
        description=description + STREAM_DESCRIPTION,
        responses=json_or_stream(
            response, f"The {answer} (`stream` false or omitted).",
            stream_event, "With `stream: true`: chunks, as Server-Sent Events.",
        ),
        examples=[example],
    )


@completion_operation(
    "Completion (OpenAI-compatible)", "A raw continuation of the prompt (no chat template).", "completion",
    CompletionResponseSerializer, CompletionStreamEventSerializer, COMPLETION_EXAMPLE,
)
class CompletionsView(OpenAIGenerationView):
    request_serializer = CompletionRequestSerializer
    translate = staticmethod(translation.to_generation_request)
    endpoint = "openai_completions"
    id_prefix = "cmpl"
    object_name = chunk_object_name = "text_completion"

    def core_requests(self, data, api_key):
        return [
            self.translate({**data, "prompt": prompt}, endpoint=self.endpoint, api_key=api_key)
            for prompt in data["prompt"]
        ]

    def choice(self, index, text, finish_reason, logprobs):
        return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}

    chunk_choice = choice

    def logprobs_body(self, logprobs, text_offset):
        offsets = []
        for logprob in logprobs:
            offsets.append(text_offset)
            text_offset += len(logprob.token)
        return {
            "tokens": [logprob.token for logprob in logprobs],
            "token_logprobs": [logprob.logprob for logprob in logprobs],
            "top_logprobs": [dict(logprob.top) for logprob in logprobs],
            "text_offset": offsets,
        }


@completion_operation(
    "Chat completion (OpenAI-compatible)", "The messages are rendered with the model's chat template.",
    "chat completion", ChatCompletionResponseSerializer, ChatCompletionStreamEventSerializer, CHAT_EXAMPLE,
)
class ChatCompletionsView(OpenAIGenerationView):
    request_serializer = ChatCompletionRequestSerializer
    translate = staticmethod(translation.to_chat_generation_request)
    endpoint = "openai_chat"
    id_prefix = "chatcmpl"
    object_name = "chat.completion"
    chunk_object_name = "chat.completion.chunk"

    tool_plan: ToolPlan | None = None  # with tools: how the model's text holds its calls

    async def prepare(self, request):
        generation = await super().prepare(request)
        self.tool_plan = generation.tool_plan
        return generation

    def first_chunk_choices(self, index):
        delta = {"role": "assistant", "content": ""}
        return [{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}]

    def choice(self, index, text, finish_reason, logprobs):
        message = {"role": "assistant", "content": text}
        if self.tool_plan is not None:
            content, calls = parse_output(text, self.tool_plan.output)
            message["content"] = content
            if calls:
                message["tool_calls"] = [as_openai(call) for call in calls]
                finish_reason = "tool_calls"
        return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish_reason}

    def batches_of(self, generation):
        """With tools, the text is held back until it ends, then streamed as its content and calls
        (which text holds a call is known only then)."""
        return generation.batches() if generation.tool_plan is None else self.held_back(generation)

    @staticmethod
    async def held_back(generation):
        parts = []
        async for event in generation.events():
            if isinstance(event, TextDelta):
                parts.append(event.text)
                continue
            content, calls = parse_output("".join(parts), generation.tool_plan.output)
            yield [
                *([TextDelta(content)] if content else []),
                *stream_deltas(calls),
                dataclasses.replace(event, finish_reason="tool_calls") if calls else event,
            ]

    def chunk_choice(self, index, text, finish_reason, logprobs):
        delta = {"content": text} if text else {}
        return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}

    def logprobs_body(self, logprobs, text_offset):
        def described(token: str, logprob: float, token_bytes) -> dict:
            return {"token": token, "logprob": logprob, "bytes": list(token_bytes)}

        return {
            "content": [
                {
                    **described(logprob.token, logprob.logprob, logprob.bytes or logprob.token.encode()),
                    "top_logprobs": [described(token, value, token.encode()) for token, value in logprob.top],
                }
                for logprob in logprobs
            ]
        }
