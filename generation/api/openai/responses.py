"""OpenAI's Responses API: POST /v1/responses, GET and DELETE /v1/responses/{id}.

The same translation onto the generation core as chat completions: the input (after the
instructions, and the conversation of `previous_response_id`) becomes chat messages, its
tools chat's (generation.core.tool_calls). The answer is a response object whose `output` holds
an assistant message and/or `function_call` items; streamed, it is OpenAI's typed events
(`event: response.output_text.delta`, `data: {type, ..., sequence_number}`), ending with
`response.completed` (or `.incomplete` at `max_output_tokens`, `.failed` if the engine
failed). With `store` (the default) the response is kept in the database
(generation.core.responses_store), seen only by the API key that made it.
"""

import functools
import json
import time
import uuid

from asgiref.sync import sync_to_async
from django.conf import settings
from drf_spectacular.utils import OpenApiExample
from rest_framework.response import Response

from common.errors import ServiceError
from generation.api.errors import describe_exception
from generation.api.generation_view import GenerationViewMixin
from generation.api.openai import translation
from generation.api.openai.responses_output_serializers import (
    DeletedResponseSerializer,
    ResponseObjectSerializer,
    ResponsesStreamEventSerializer,
)
from generation.api.openai.responses_serializers import ResponsesRequestSerializer
from generation.api.openai.serializers import OpenAIErrorSerializer
from generation.api.openai.views import OpenAIView, generation_operation
from generation.api.openapi import LISTING_ERRORS, error_responses, example_max_tokens, json_or_stream, operation
from generation.api.sse import KEEPALIVE, KEEPALIVE_COMMENT, event_stream_response, sse_event, with_keepalive
from generation.engine.types import Finished, TextDelta
from generation.core.responses_store import ResponseNotFound, delete_response, store_response, stored_response
from generation.core.service import Generation
from generation.core.tool_calls import ToolCall, parse_output

# The core's names of request fields -> the Responses API's, for the `param` of an error.
WIRE_FIELDS = {"json_schema": "text.format", "max_tokens": "max_output_tokens", "messages": "input"}
# A call's arguments are streamed in pieces of this many characters, as OpenAI does.
ARGUMENTS_FRAGMENT_CHARS = 32


class PreviousResponseNotFound(ResponseNotFound):
    code = "previous_response_not_found"


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def output_text(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_call(call: ToolCall, status: str = "completed", arguments: str | None = None) -> dict:
    """A call as an output item; its id is the item's, its `call_id` what a function_call_output names."""
    return {
        "id": "fc_" + call.id.removeprefix("call_"), "type": "function_call", "call_id": call.id, "name": call.name,
        "arguments": call.arguments if arguments is None else arguments, "status": status,
    }


def _usage(finished: Finished) -> dict:
    return {
        "input_tokens": finished.prompt_tokens,
        "input_tokens_details": {"cached_tokens": finished.cached_prompt_tokens},
        "output_tokens": finished.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
    }


class ResponseObject:
    """One response as it goes: what its request set, then its output and how it ended."""

    def __init__(self, validated: dict, *, model_id: str):
        self.id = _new_id("resp")
        self.message_id = _new_id("msg")
        self.created_at = int(time.time())
        self.model_id = model_id
        self.request = validated

    def message(self, text: str | None, status: str) -> dict:
        """The output message; text None: begun, no content part yet."""
        content = [] if text is None else [output_text(text)]
        return {"id": self.message_id, "type": "message", "role": "assistant", "status": status, "content": content}

    def output(self, text: str | None, calls: list[ToolCall], *, complete: bool) -> list[dict]:
        """The output items: the message (unless the answer is calls only), then the calls."""
        status = "completed" if complete else "incomplete"
        message = [] if text is None else [self.message(text, status)]
        return message + [function_call(call, status) for call in calls]

    def body(self, *, output: list[dict] = (), finished: Finished | None = None, error: ServiceError | None = None):
        """in_progress without `finished` nor `error`; else completed, incomplete (max_output_tokens) or failed."""
        incomplete = finished is not None and finished.finish_reason == "length"
        if error is not None:
            status = "failed"
        elif finished is None:
            status = "in_progress"
        else:
            status = "incomplete" if incomplete else "completed"
        request = self.request
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": None if error is None else {
                "code": "rate_limit_exceeded" if error.status == 429 else "server_error", "message": error.message
            },
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": request.get("instructions"),
            "max_output_tokens": request.get("max_output_tokens"),
            "model": self.model_id,
            "output": list(output),
            "parallel_tool_calls": request.get("parallel_tool_calls", True),
            "previous_response_id": request.get("previous_response_id"),
            "store": request["store"],
            "temperature": request.get("temperature"),
            "top_p": request.get("top_p"),
            "text": {"format": request.get("text", {}).get("format", {"type": "text"})},
            "tool_choice": self.tool_choice(),
            "tools": request.get("tools", []),
            "truncation": "disabled",
            "usage": None if finished is None else _usage(finished),
            "metadata": request.get("metadata", {}),
        }

    def tool_choice(self):
        choice = self.request.get("tool_choice", "auto")
        return {"type": "function", "name": choice["name"]} if isinstance(choice, dict) else choice


class EventWriter:
    """The typed events of one stream, numbered in the order sent."""

    def __init__(self):
        self.sequence_number = 0

    def __call__(self, event_type: str, **fields) -> bytes:
        body = {"type": event_type, **fields, "sequence_number": self.sequence_number}
        self.sequence_number += 1
        return sse_event(json.dumps(body), event=event_type)


def error_event(exc: ServiceError, *, write: EventWriter) -> bytes:
    """A failure outside the generation (the stream's own): OpenAI's `error` event."""
    error = describe_exception(exc, {})
    return write("error", code=error.code, message=error.message, param=WIRE_FIELDS.get(error.field, error.field))


RESPONSES_EXAMPLE = OpenApiExample(
    "Instructions and one question",
    value={
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "instructions": "Answer in one sentence.",
        "input": "What is the capital of France?",
        "max_output_tokens": example_max_tokens(32),
    },
    request_only=True,
)


@generation_operation(
    summary="Create a response (OpenAI Responses API)",
    description=(
        "The input (after `instructions` and the conversation of `previous_response_id`) is rendered with the "
        "model's chat template. The answer is `application/json` unless `stream` is true; with `stream: true` "
        "it is `text/event-stream`: `response.created`, `response.in_progress`, `response.output_item.added`, "
        "`response.content_part.added`, one `response.output_text.delta` per piece of text, "
        "`response.output_text.done`, `response.content_part.done`, `response.output_item.done`, then "
        "`response.completed` (`response.incomplete` when `max_output_tokens` ended the text, "
        "`response.failed` when the engine failed). The schema of the `text/event-stream` response is that "
        "of one event. With `tools`, a call is a `function_call` item (streamed as "
        "`response.function_call_arguments.delta` / `.done`), sent when the answer ends."
    ),
    responses=json_or_stream(
        ResponseObjectSerializer, "The response.",
        ResponsesStreamEventSerializer, "With `stream: true`: typed Server-Sent Events.",
    ),
    examples=[RESPONSES_EXAMPLE],
)
class ResponsesView(GenerationViewMixin, OpenAIView):
    request_serializer = ResponsesRequestSerializer
    endpoint = "openai_responses"
    wire_fields = WIRE_FIELDS

    async def post(self, request):
        serializer = self.request_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        conversation = [*await self.previous_conversation(data, request.auth), *data["input"]]
        instructions = [{"role": "system", "content": data["instructions"]}] if data.get("instructions") else []
        core_request = translation.to_response_generation_request(
            data, tuple(instructions + conversation), endpoint=self.endpoint, api_key=request.auth
        )
        if core_request.tools is not None:  # the grammar is the tools': a schema it cannot compile is theirs
            self.wire_fields = {**WIRE_FIELDS, "json_schema": "tools"}
        generation = await self.prepare(core_request)
        response = ResponseObject(data, model_id=generation.model_id)
        keep = functools.partial(self.keep, response, conversation, api_key=request.auth)
        if data["stream"]:
            write = EventWriter()
            return event_stream_response(
                self.events(generation, response, keep, write), functools.partial(error_event, write=write)
            )
        text, finished, _ = await generation.collect()
        content, calls = answer(generation, text)
        body = response.body(output=response.output(content, calls, complete=finished.finish_reason != "length"),
                             finished=finished)
        await keep(body, content, calls)
        return Response(body)

    @staticmethod
    async def previous_conversation(data: dict, api_key) -> list[dict]:
        if "previous_response_id" not in data:
            return []
        response_id = data["previous_response_id"]
        try:
            previous = await sync_to_async(stored_response)(response_id=response_id, api_key=api_key)
        except ResponseNotFound:
            raise PreviousResponseNotFound(response_id, field="previous_response_id") from None
        return previous.conversation

    @staticmethod
    async def keep(
        response: ResponseObject, conversation: list[dict], body: dict, content: str | None, calls: list[ToolCall],
        *, api_key,
    ) -> None:
        """Store an ended response (with `store`): the conversation it continues, then its answer."""
        if response.request["store"]:
            answer_message = {"role": "assistant", "content": content or ""}
            if calls:
                answer_message["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]
            await sync_to_async(store_response)(
                response_id=response.id, api_key=api_key, body=body, conversation=[*conversation, answer_message],
            )

    async def events(self, generation: Generation, response: ResponseObject, keep, write: EventWriter):
        yield write("response.created", response=response.body())
        yield write("response.in_progress", response=response.body())
        # With tools, the text is held back until it ends: whether it is a call is known only then.
        live = generation.tool_plan is None
        where = {"item_id": response.message_id, "output_index": 0, "content_index": 0}

        def message_begins() -> list[bytes]:
            return [
                write("response.output_item.added", output_index=0, item=response.message(None, "in_progress")),
                write("response.content_part.added", **where, part=output_text("")),
            ]

        for event in message_begins() if live else ():
            yield event
        parts = []
        try:
            async for batch in with_keepalive(generation.batches(), settings.LLM_SSE_KEEPALIVE_SECONDS):
                if batch is KEEPALIVE:
                    yield KEEPALIVE_COMMENT
                    continue
                deltas = []  # the events of deltas that arrived together, in one write
                for event in batch:
                    if isinstance(event, TextDelta):
                        parts.append(event.text)
                        if live:
                            deltas.append(write("response.output_text.delta", **where, delta=event.text, logprobs=[]))
                    else:
                        finished = event
                if deltas:
                    yield b"".join(deltas)
        except ServiceError as exc:
            partial = "".join(parts)
            output = response.output(partial, [], complete=False) if live else []
            yield write("response.failed", response=response.body(output=output, error=exc))
            return
        content, calls = answer(generation, "".join(parts))
        output = response.output(content, calls, complete=finished.finish_reason != "length")
        body = response.body(output=output, finished=finished)
        if content is not None:
            if not live:
                for event in message_begins():
                    yield event
                yield write("response.output_text.delta", **where, delta=content, logprobs=[])
            yield write("response.output_text.done", **where, text=content, logprobs=[])
            yield write("response.content_part.done", **where, part=output_text(content))
            yield write("response.output_item.done", output_index=0, item=output[0])
        first_call = 0 if content is None else 1
        for index, (item, call) in enumerate(zip(output[first_call:], calls), start=first_call):
            yield write("response.output_item.added", output_index=index, item=function_call(call, "in_progress", ""))
            at = {"item_id": item["id"], "output_index": index}
            for start in range(0, len(call.arguments), ARGUMENTS_FRAGMENT_CHARS):
                yield write("response.function_call_arguments.delta", **at,
                            delta=call.arguments[start:start + ARGUMENTS_FRAGMENT_CHARS])
            yield write("response.function_call_arguments.done", **at, arguments=call.arguments)
            yield write("response.output_item.done", output_index=index, item=item)
        await keep(body, content, calls)
        yield write(f"response.{body['status']}", response=body)


def answer(generation: Generation, text: str) -> tuple[str | None, list[ToolCall]]:
    """The model's text as (the message's text or None, the calls): all text without tools."""
    if generation.tool_plan is None:
        return text, []
    return parse_output(text, generation.tool_plan.output)


NOT_FOUND = {404: "No stored response of this id for this API key (deleted, expired, or never stored)."}


stored_operation = functools.partial(
    operation, errors=error_responses(OpenAIErrorSerializer, (*LISTING_ERRORS, 404), NOT_FOUND), tags=["openai"]
)


class ResponseDetailView(OpenAIView):
    @stored_operation(
        summary="Retrieve a stored response (OpenAI Responses API)", responses={200: ResponseObjectSerializer}
    )
    def get(self, request, response_id: str):
        return Response(stored_response(response_id=response_id, api_key=request.auth).body)

    @stored_operation(
        summary="Delete a stored response (OpenAI Responses API)", responses={200: DeletedResponseSerializer}
    )
    def delete(self, request, response_id: str):
        delete_response(response_id=response_id, api_key=request.auth)
        return Response({"id": response_id, "object": "response", "deleted": True})
