"""generation.core.tool_calls, the plain functions behind tool calling: plans, grammars, parsing, streaming."""

import json

import jsonschema

from generation.core.tool_calls import (
    AUTO,
    FUNCTION,
    MAX_PARALLEL_CALLS,
    REQUIRED,
    ToolChoice,
    messages_for_template,
    parse_output,
    plan,
    stream_deltas,
)

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {"name": "get_time", "parameters": {"type": "object", "properties": {}}}


def valid(schema: dict, value) -> bool:
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    return True


def test_a_required_call_follows_the_tools_schema():
    schema = plan(ToolChoice((WEATHER, TIME), REQUIRED), template_takes_tools=False).schema
    assert valid(schema, {"name": "get_weather", "arguments": {"city": "Paris"}})
    assert valid(schema, {"name": "get_time", "arguments": {}})
    assert not valid(schema, {"name": "get_weather", "arguments": {}})  # city is required
    assert not valid(schema, {"name": "other", "arguments": {}})
    assert not valid(schema, {"content": "hi"})
    assert not valid(schema, [{"name": "get_time", "arguments": {}}])  # no parallel calls


def test_parallel_calls_are_a_bounded_list():
    schema = plan(ToolChoice((WEATHER, TIME), REQUIRED, parallel=True), template_takes_tools=False).schema
    call = {"name": "get_time", "arguments": {}}
    assert valid(schema, call) and valid(schema, [call, call])
    assert not valid(schema, []) and not valid(schema, [call] * (MAX_PARALLEL_CALLS + 1))


def test_a_named_function_is_the_only_call():
    schema = plan(ToolChoice((WEATHER, TIME), FUNCTION, name="get_time"), template_takes_tools=True).schema
    assert valid(schema, {"name": "get_time", "arguments": {}})
    assert not valid(schema, {"name": "get_weather", "arguments": {"city": "Paris"}})


def test_auto_without_template_tools_allows_an_answer_or_a_call():
    tool_plan = plan(ToolChoice((WEATHER,), AUTO), template_takes_tools=False)
    assert tool_plan.output == "json" and "get_weather" in tool_plan.system_text
    assert valid(tool_plan.schema, {"content": "Hello"})
    assert valid(tool_plan.schema, {"name": "get_weather", "arguments": {"city": "Oslo"}})
    assert not valid(tool_plan.schema, {"content": "Hello", "name": "get_weather"})


def test_auto_with_template_tools_renders_them_and_reads_hermes_calls():
    tool_plan = plan(ToolChoice((WEATHER,), AUTO), template_takes_tools=True)
    assert tool_plan.schema is None and tool_plan.output == "hermes"
    assert tool_plan.template_tools == [{"type": "function", "function": WEATHER}]
    text = 'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    content, [call] = parse_output(text, "hermes")
    assert content == "Let me look." and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Oslo"} and call.id.startswith("call_")
    assert parse_output("Just text.", "hermes") == ("Just text.", [])
    assert parse_output("<tool_call>not json</tool_call>", "hermes") == ("<tool_call>not json</tool_call>", [])


def test_json_output_is_content_or_calls():
    assert parse_output('{"content": "Hi"}', "json") == ("Hi", [])
    content, calls = parse_output('[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"x": 1}}]', "json")
    assert content is None and [call.name for call in calls] == ["a", "b"]
    assert calls[0].id != calls[1].id and json.loads(calls[1].arguments) == {"x": 1}
    # Cut by max_tokens: a call is left as text, an answer's content is what was written.
    assert parse_output('{"name": "a", "argu', "json") == ('{"name": "a", "argu', [])
    assert parse_output('{"content":"Hello wor', "json") == ("Hello wor", [])
    assert parse_output('{"content":"caf\\u00', "json") == ("caf", [])


def test_history_without_template_tools_is_text():
    history = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "name": "get_weather",
                                                             "arguments": '{"city": "Oslo"}'}]},
        {"role": "tool", "content": "Sunny", "tool_call_id": "call_1"},
    ]
    tool_plan = plan(ToolChoice((WEATHER,), AUTO), template_takes_tools=False)
    system, user, assistant, result = messages_for_template(history, tool_plan)
    assert system["role"] == "system" and "get_weather" in system["content"]
    assert json.loads(assistant["content"]) == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert result == {"role": "user", "content": "Tool result: Sunny"}
    # Tools not offered (tool_choice none): the same history, without the system message.
    assert messages_for_template(history, None)[0] == user
    # A template with tools gets OpenAI's shape, arguments as an object.
    with_tools = messages_for_template(history, plan(ToolChoice((WEATHER,)), template_takes_tools=True))
    assert with_tools[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}


def test_streamed_calls_join_into_the_calls():
    answer = [{"name": "a", "arguments": {"text": "x" * 100}}, {"name": "b", "arguments": {}}]
    _, calls = parse_output(json.dumps(answer), "json")
    joined = {}
    for delta in stream_deltas(calls, fragment_chars=16):
        [fragment] = delta.tool_calls
        call = joined.setdefault(fragment["index"], {"id": fragment.get("id"), "name": "", "arguments": ""})
        call["name"] += fragment["function"].get("name", "")
        call["arguments"] += fragment["function"]["arguments"]
    assert [(call["id"], call["name"], call["arguments"]) for call in joined.values()] == [
        (call.id, call.name, call.arguments) for call in calls
    ]


def test_arguments_name_no_keys_beyond_the_tools():
    schema = plan(ToolChoice((WEATHER,), REQUIRED, parallel=False), template_takes_tools=False).schema
    assert valid(schema, {"name": "get_weather", "arguments": {"city": "Paris"}})
    # SmolLM2 under the open schema went on with `"type": "object", "properties": ...` of its own.
    assert not valid(schema, {"name": "get_weather", "arguments": {"city": "Paris", "type": "object"}})
