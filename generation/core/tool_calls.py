"""Tool calling, independent of any wire format: what the model is shown, the grammar that
constrains its output, and its output parsed into calls.

Plain functions over plain values (no Django), for every API that offers tools (OpenAI's
chat completions; its Responses API can reuse them). A request's tools and choice make a
`ToolPlan` for the model's chat template:

- a template that takes Hugging Face's `tools` variable renders them itself; the model then
  writes its calls in its own format, parsed as Hermes-style `<tool_call>{json}</tool_call>`
  blocks (output "hermes");
- for a template without tools, a system message describes them, and the output is JSON under
  a grammar (output "json"): `{"name", "arguments"}` for a call (a list of them when parallel
  calls are allowed), or, when the model may choose (`auto`), `{"content": text}` for an answer.

`required` and a named function always use the grammar (whatever the template), so the call
and its arguments are valid against the tool's schema with any model.
"""

import json
import re
import secrets
from dataclasses import dataclass

# The most calls one answer holds when parallel calls are asked for: a small model under the
# grammar repeats its call as long as the grammar lets it (SmolLM2 until max_tokens, under `auto`).
MAX_PARALLEL_CALLS = 4

AUTO, REQUIRED, FUNCTION = "auto", "required", "function"


@dataclass(frozen=True)
class ToolChoice:
    """The request's tools, as OpenAI's function objects ({"name", "description"?, "parameters"?}),
    and how the model may use them: AUTO, REQUIRED, or FUNCTION (the one named `name`)."""

    tools: tuple[dict, ...]
    mode: str = AUTO
    name: str | None = None
    parallel: bool = False  # several calls in one answer (up to MAX_PARALLEL_CALLS) allowed


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it


@dataclass(frozen=True)
class ToolPlan:
    """How a request's tools reach the model and come back from it."""

    template_tools: list[dict] | None  # the chat template's `tools` (OpenAI's shape), or None
    system_text: str | None  # a system message describing the tools, for a template without them
    schema: dict | None  # the grammar the output must follow, or None for free text
    output: str  # "json" (under `schema`) or "hermes" (the model's own <tool_call> blocks)


def plan(choice: ToolChoice, *, template_takes_tools: bool) -> ToolPlan:
    forced = choice.mode != AUTO
    if template_takes_tools:
        tools = [{"type": "function", "function": tool} for tool in choice.tools]
        if forced:
            return ToolPlan(template_tools=tools, system_text=None, schema=call_schema(choice), output="json")
        return ToolPlan(template_tools=tools, system_text=None, schema=None, output="hermes")
    schema = call_schema(choice)
    if not forced:
        schema = {"anyOf": [_ANSWER_SCHEMA, *_alternatives(schema)]}
    return ToolPlan(template_tools=None, system_text=describe(choice), schema=schema, output="json")


_ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"content": {"type": "string"}},
    "required": ["content"],
    "additionalProperties": False,
}


def _alternatives(schema: dict) -> list[dict]:
    return schema["anyOf"] if list(schema) == ["anyOf"] else [schema]


def _closed(schema):
    """The schema with its objects closed to properties it does not name (as OpenAI's strict mode
    has them): the grammar otherwise lets a small model go on writing keys of its own."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _closed(value) for key, value in schema.items()}
    if isinstance(schema.get("properties"), dict):
        closed["properties"] = {name: _closed(value) for name, value in schema["properties"].items()}
        closed.setdefault("additionalProperties", False)
    return closed


def _one_call_schema(tool: dict) -> dict:
    return {
        "type": "object",
        "properties": {
            "name": {"const": tool["name"]},
            "arguments": _closed(tool.get("parameters") or {"type": "object", "properties": {}}),
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def call_schema(choice: ToolChoice) -> dict:
    """JSON that is a call of one of the tools (of the named one only, for FUNCTION), or with
    parallel calls allowed (and no function named), a list of 1 to MAX_PARALLEL_CALLS calls."""
    tools = [tool for tool in choice.tools if choice.mode != FUNCTION or tool["name"] == choice.name]
    calls = [_one_call_schema(tool) for tool in tools]
    one = calls[0] if len(calls) == 1 else {"anyOf": calls}
    if choice.mode == FUNCTION or not choice.parallel:
        return one
    return {"anyOf": [one, {"type": "array", "items": one, "minItems": 1, "maxItems": MAX_PARALLEL_CALLS}]}


def describe(choice: ToolChoice) -> str:
    """The system message that shows a model whose template has no tools what it may call."""
    lines = []
    for tool in choice.tools:
        description = tool.get("description") or ""
        parameters = json.dumps(tool.get("parameters") or {"type": "object", "properties": {}})
        lines.append(f"- {tool['name']}: {description} Arguments (JSON Schema): {parameters}")
    call = '{"name": <tool name>, "arguments": <its arguments>}'
    if choice.mode == FUNCTION:
        how = f"Call the tool {choice.name} with JSON {call}."
    elif choice.mode == REQUIRED:
        how = f"Call one of these tools with JSON {call}."
    else:
        how = f'To call a tool, answer with JSON {call}; to answer directly, answer with JSON {{"content": <answer>}}.'
    return "You can use these tools:\n" + "\n".join(lines) + "\n" + how


def messages_for_template(messages: list[dict], plan_: ToolPlan | None) -> list[dict]:
    """The conversation as the chat template takes it: for a template with tools, OpenAI's
    assistant `tool_calls` with their arguments as objects (as Hugging Face's templates expect)
    and `tool` messages as they are; otherwise (no plan: tools not offered this time) the calls
    written as the JSON the model is asked for and each tool's result as a user message, after
    the system message of tools."""
    if plan_ is not None and plan_.template_tools is not None:
        return [_with_parsed_arguments(message) for message in messages]
    rendered = []
    for message in messages:
        if message.get("tool_calls"):
            calls = [{"name": call["name"], "arguments": _parsed(call["arguments"])} for call in message["tool_calls"]]
            text = json.dumps(calls[0] if len(calls) == 1 else calls)
            rendered.append({"role": "assistant", "content": text})
        elif message["role"] == "tool":
            rendered.append({"role": "user", "content": f"Tool result: {message['content']}"})
        else:
            rendered.append({"role": message["role"], "content": message["content"]})
    if plan_ is None or plan_.system_text is None:
        return rendered
    if rendered and rendered[0]["role"] == "system":
        first = rendered[0]
        return [{"role": "system", "content": f"{first['content']}\n\n{plan_.system_text}"}, *rendered[1:]]
    return [{"role": "system", "content": plan_.system_text}, *rendered]


def _parsed(arguments: str):
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _with_parsed_arguments(message: dict) -> dict:
    if not message.get("tool_calls"):
        return message
    calls = [
        {
            "type": "function",
            "id": call["id"],
            "function": {"name": call["name"], "arguments": _parsed(call["arguments"])},
        }
        for call in message["tool_calls"]
    ]
    return {**message, "tool_calls": calls}


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def parse_output(text: str, output: str) -> tuple[str | None, list[ToolCall]]:
    """The model's answer as (content or None, calls)."""
    return _parse_json(text) if output == "json" else _parse_hermes(text)


def _call(value) -> ToolCall | None:
    if isinstance(value, dict) and isinstance(value.get("name"), str) and "arguments" in value:
        arguments = value["arguments"]
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        return ToolCall(new_call_id(), value["name"], text)
    return None


def _parse_json(text: str) -> tuple[str | None, list[ToolCall]]:
    try:
        value = json.loads(text)
    except ValueError:  # cut off by max_tokens: the answer so far, else what was written, as text
        return _cut_answer(text), []
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"], []
    calls = [_call(item) for item in (value if isinstance(value, list) else [value])]
    if calls and all(calls):
        return None, calls
    return text, []


def _cut_answer(text: str) -> str:
    """The content of an answer `{"content": "...` that max_tokens cut, or the text as it is."""
    if text.startswith('{"content":"'):
        for cut in range(6):  # an escape (at most 6 characters: \\uXXXX) may have been cut too
            try:
                return json.loads(text[: len(text) - cut] + '"}')["content"]
            except ValueError:
                continue
    return text


_HERMES_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def _parse_hermes(text: str) -> tuple[str | None, list[ToolCall]]:
    calls = []
    for block in _HERMES_CALL.findall(text):
        try:
            call = _call(json.loads(block))
        except ValueError:
            call = None
        if call is None:  # not a call after all: the whole answer is text
            return text, []
        calls.append(call)
    content = _HERMES_CALL.sub("", text).strip()
    return (content or None) if calls else text, calls


@dataclass(frozen=True)
class ToolCallsDelta:
    """One chunk's `delta.tool_calls`, in a stream of text deltas."""

    tool_calls: list[dict]


def stream_deltas(calls: list[ToolCall], *, fragment_chars: int = 32) -> list[ToolCallsDelta]:
    """The `delta.tool_calls` of successive chunks, as OpenAI streams calls: each call opens
    with its index, id, type and name (arguments ""), then its arguments in fragments, which
    clients join by index."""
    deltas = []
    for index, call in enumerate(calls):
        deltas.append(
            [{"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}]
        )
        for start in range(0, len(call.arguments), fragment_chars):
            deltas.append([{"index": index, "function": {"arguments": call.arguments[start:start + fragment_chars]}}])
    return [ToolCallsDelta(delta) for delta in deltas]


def as_openai(call: ToolCall) -> dict:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
