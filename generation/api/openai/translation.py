"""OpenAI's requests (/v1/completions, /v1/chat/completions, /v1/responses) as the core's.

The one place where OpenAI's names meet the core's: `response_format` is the core's
`json_schema`, chat's `max_completion_tokens` its `max_tokens`, completions' `logprobs`
and chat's `logprobs` with `top_logprobs` its `top_logprobs`.
"""

import json

from catalog.sampling import SamplingParams
from generation.api.sampling import JSON_OBJECT_SCHEMA
from generation.core.request import GenerationRequest
from generation.core.tool_calls import AUTO, FUNCTION, ToolChoice


def wire_fields(validated: dict) -> dict[str, str]:
    """The core's names of request fields -> those this request used, for the `param` of an error."""
    # With tools, the grammar is theirs: a schema the engine cannot compile is a tool's parameters.
    fields = {"json_schema": "tools" if tool_choice(validated) else "response_format"}
    if validated.get("max_completion_tokens") is not None:
        fields["max_tokens"] = "max_completion_tokens"
    return fields


def to_generation_request(validated: dict, *, endpoint: str, api_key=None) -> GenerationRequest:
    """A completion request, as CompletionRequestSerializer validated it."""
    return GenerationRequest(
        model=validated.get("model"),
        prompt=validated["prompt"],
        sampling=_sampling(validated, max_tokens=validated.get("max_tokens"), top_logprobs=validated.get("logprobs")),
        endpoint=endpoint,
        api_key=api_key,
    )


def to_chat_generation_request(validated: dict, *, endpoint: str, api_key=None) -> GenerationRequest:
    """A chat completion request, as ChatCompletionRequestSerializer validated it."""
    return GenerationRequest(
        model=validated.get("model"),
        messages=tuple(chat_message(message) for message in validated["messages"]),
        tools=tool_choice(validated),
        sampling=_sampling(
            validated,
            max_tokens=validated.get("max_completion_tokens", validated.get("max_tokens")),
            top_logprobs=validated.get("top_logprobs", 0) if validated["logprobs"] else None,  # None: no logprobs
        ),
        endpoint=endpoint,
        api_key=api_key,
    )


def to_response_generation_request(
    validated: dict, messages: tuple[dict, ...], *, endpoint: str, api_key=None
) -> GenerationRequest:
    """A Responses API request, as ResponsesRequestSerializer validated it, its input (with the
    instructions and the previous response) as chat messages."""
    text_format = validated.get("text", {}).get("format")
    if text_format is not None and text_format["type"] == "json_schema":
        text_format = {"type": "json_schema", "json_schema": text_format}  # chat's shape: the same grammar
    # Its tools are flat: chat's function objects with their type beside them.
    chat_tools = [{"function": {key: value for key, value in tool.items() if key != "type"}}
                  for tool in validated.get("tools", ())]
    return GenerationRequest(
        model=validated.get("model"),
        messages=messages,
        tools=tool_choice({**validated, "tools": chat_tools}),
        sampling=SamplingParams(
            max_tokens=validated.get("max_output_tokens"),
            temperature=validated.get("temperature"),
            top_p=validated.get("top_p"),
            json_schema=grammar_of(text_format),
        ),
        endpoint=endpoint,
        api_key=api_key,
    )


def chat_message(message: dict) -> dict:
    """A validated chat message as the core's: its role and content, an assistant's tool calls and
    a tool result's call id."""
    core = {"role": message["role"], "content": message["content"]}
    if message.get("tool_calls"):
        core["tool_calls"] = [
            {"id": call["id"], "name": call["function"]["name"], "arguments": call["function"]["arguments"]}
            for call in message["tool_calls"]
        ]
    if message["role"] == "tool":
        core["tool_call_id"] = message.get("tool_call_id", "")
    return core


def tool_choice(validated: dict) -> ToolChoice | None:
    """The request's tools and `tool_choice` as the core's, or None: no tools, or "none"."""
    tools = validated.get("tools")
    choice = validated.get("tool_choice", AUTO)
    if not tools or choice == "none":
        return None
    return ToolChoice(
        tools=tuple(tool["function"] for tool in tools),
        mode=FUNCTION if isinstance(choice, dict) else choice,
        name=choice["name"] if isinstance(choice, dict) else None,
        # Only when asked for: a small model allowed a list repeats its call (README, "Tool calling").
        parallel=validated.get("parallel_tool_calls", False),
    )


def grammar_of(response_format: dict | None) -> str | None:
    """The JSON schema (as text) that constrains the output, or None for free text."""
    if response_format is None or response_format["type"] == "text":
        return None
    if response_format["type"] == "json_object":
        return JSON_OBJECT_SCHEMA
    return json.dumps(response_format["json_schema"]["schema"])


def _sampling(validated: dict, *, max_tokens: int | None, top_logprobs: int | None) -> SamplingParams:
    """The parameters both of OpenAI's requests take under the same names; the others as given."""
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=validated.get("temperature"),
        top_p=validated.get("top_p"),
        top_k=validated.get("top_k"),
        min_p=validated.get("min_p"),
        repetition_penalty=validated.get("repetition_penalty"),
        presence_penalty=validated.get("presence_penalty"),
        frequency_penalty=validated.get("frequency_penalty"),
        logit_bias=tuple(sorted(validated.get("logit_bias", {}).items())),
        stop=tuple(validated.get("stop", ())),
        json_schema=grammar_of(validated.get("response_format")),
        top_logprobs=top_logprobs,
    )
