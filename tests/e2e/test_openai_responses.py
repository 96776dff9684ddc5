"""OpenAI's Responses API (/v1/responses), called with the official `openai` package against
a real Daphne process with the real bundled models: created, streamed, continued, stored,
retrieved and deleted, scoped to API keys, refused in OpenAI's error shape."""

import json
import os
import signal

import httpx
import openai
import pytest

from tests.support.keys import new_key
from tests.support.responses_events import TEXT_EVENTS

CHAT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
GREEDY = {"model": CHAT_MODEL, "temperature": 0}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
    "required": ["answer"],
    "additionalProperties": False,
}


def sdk(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def client(live_server):
    with sdk(live_server.url) as client:
        yield client


def test_a_response_and_its_stream_agree(client):
    request = {**GREEDY, "instructions": "Answer briefly.", "input": "Name a primary colour.", "max_output_tokens": 12}
    response = client.responses.create(**request)
    assert response.id.startswith("resp_") and response.object == "response" and response.model == CHAT_MODEL
    assert response.status in ("completed", "incomplete") and response.output_text
    [message] = response.output
    assert message.type == "message" and message.role == "assistant" and message.content[0].type == "output_text"
    assert response.instructions == "Answer briefly." and response.max_output_tokens == 12
    usage = response.usage
    assert 0 < usage.output_tokens <= 12 and usage.total_tokens == usage.input_tokens + usage.output_tokens

    events = list(client.responses.create(**request, stream=True))
    types = [event.type for event in events]
    deltas = types.count("response.output_text.delta")
    assert deltas >= 1
    deltas_events = ["response.output_text.delta"] * deltas
    assert types == TEXT_EVENTS[:4] + deltas_events + TEXT_EVENTS[5:] + [f"response.{response.status}"]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == response.output_text
    done = next(event for event in events if event.type == "response.output_text.done")
    assert done.text == response.output_text
    final = events[-1].response
    assert final.output_text == response.output_text
    # The same counts; the stream's prompt, sent second, may come from the prefix cache.
    assert final.usage.model_dump(exclude={"input_tokens_details"}) == response.usage.model_dump(
        exclude={"input_tokens_details"})
    assert final.id != response.id and final.id == events[0].response.id
    assert final.output[0].id == events[2].item.id == events[4].item_id


def test_the_stream_helper_parses_every_event_and_text_format_constrains_the_output(client):
    text_format = {"type": "json_schema", "name": "verdict", "schema": ANSWER_SCHEMA, "strict": True}
    with client.responses.stream(
        **GREEDY, input="Is the sea salty? Answer yes or no.", max_output_tokens=24, text={"format": text_format}
    ) as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert types[-1] == "response.completed" and "response.output_text.done" in types
    assert json.loads(final.output_text)["answer"] in ("yes", "no")
    assert final.text.format.type == "json_schema" and final.text.format.name == "verdict"
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_previous_response_id_puts_the_earlier_input_and_output_first(client):
    first = client.responses.create(**GREEDY, instructions="Be brief.", input="My name is Ada.", max_output_tokens=8)
    second = client.responses.create(
        **GREEDY, previous_response_id=first.id, input="What is my name?", max_output_tokens=8
    )
    assert second.previous_response_id == first.id
    # The same conversation sent whole (the instructions are not carried on, as OpenAI does).
    whole = client.responses.create(
        **GREEDY,
        input=[
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": [{"type": "output_text", "text": first.output_text}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What is my name?"}]},
        ],
        max_output_tokens=8,
    )
    assert second.usage.input_tokens == whole.usage.input_tokens > first.usage.input_tokens
    assert second.output_text == whole.output_text

    with pytest.raises(openai.NotFoundError) as raised:
        client.responses.create(**GREEDY, previous_response_id="resp_unknown", input="Hi", max_output_tokens=1)
    assert raised.value.param == "previous_response_id" and raised.value.code == "previous_response_not_found"


def test_a_stored_response_is_retrieved_then_deleted(client, live_server):
    response = client.responses.create(**GREEDY, input="Hello", max_output_tokens=2, metadata={"run": "7"})
    assert client.responses.retrieve(response.id) == response
    assert response.metadata == {"run": "7"} and response.store is True
    deleted = httpx.delete(f"{live_server.url}/v1/responses/{response.id}", timeout=30)
    assert deleted.status_code == 200 and deleted.json() == {"id": response.id, "object": "response", "deleted": True}
    for call in (client.responses.retrieve, client.responses.delete):
        with pytest.raises(openai.NotFoundError) as raised:
            call(response.id)
        assert raised.value.code == "not_found" and raised.value.type == "invalid_request_error"

    unstored = client.responses.create(**GREEDY, input="Hello", max_output_tokens=2, store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


@pytest.mark.parametrize(
    "body, param",
    [
        # The status and param of the cases the service checks itself: tests/unit/test_responses_contract.py;
        # here, that the SDK reads them, and schemas only the engine's grammar compiler refuses.
        ({}, "input"),
        ({"input": [{"role": "robot", "content": "Hi"}]}, "input[0].role"),
        ({"input": "Hi", "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": 5}}}},
         "text.format"),
        ({"input": "Hi", "tools": [{"type": "function", "name": "f", "parameters": {"type": 5}}]}, "tools"),
    ],
)
def test_bad_input_is_a_400_in_openais_shape(live_server, body, param):
    response = httpx.post(f"{live_server.url}/v1/responses", json={"model": CHAT_MODEL, **body}, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"], error


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"],
    },
}


def test_a_function_call_and_its_output_in_the_next_input(client):
    ask = {**GREEDY, "input": "What is the weather in Paris?", "tools": [WEATHER], "max_output_tokens": 40}
    response = client.responses.create(**ask, tool_choice="required")
    [call] = response.output
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id.startswith("call_")
    assert set(json.loads(call.arguments)) == {"city"} and response.status == "completed"
    assert response.tools[0].name == "get_weather" and response.tool_choice == "required"

    answer = client.responses.create(
        **GREEDY, previous_response_id=response.id, tools=[WEATHER], max_output_tokens=16,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"celsius": 21}'}],
    )
    assert answer.output[0].type == "message" and answer.usage.input_tokens > response.usage.input_tokens

    with client.responses.stream(**ask, tool_choice={"type": "function", "name": "get_weather"}) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [event.type for event in events]
    assert "response.output_text.delta" not in types and types.count("response.function_call_arguments.delta") >= 1
    arguments = "".join(event.delta for event in events if event.type == "response.function_call_arguments.delta")
    [streamed] = final.output
    assert streamed.type == "function_call" and streamed.arguments == arguments
    assert json.loads(arguments) == json.loads(call.arguments)


def test_a_keys_responses_are_invisible_to_another_key(keyed_server):
    owner = sdk(keyed_server.url, new_key(keyed_server, "owner"))
    other = sdk(keyed_server.url, new_key(keyed_server, "other"))
    response = owner.responses.create(**GREEDY, input="Hello", max_output_tokens=2)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError) as raised:
        other.responses.create(**GREEDY, previous_response_id=response.id, input="Hi", max_output_tokens=1)
    assert raised.value.param == "previous_response_id"
    assert owner.responses.retrieve(response.id).output_text == response.output_text
    with pytest.raises(openai.AuthenticationError):
        sdk(keyed_server.url, "not-a-key").responses.retrieve(response.id)


def test_an_engine_failure_mid_stream_ends_with_response_failed(keyed_server):
    """The worker killed after the first delta: the stream ends with `response.failed`, which the SDK parses."""
    client = sdk(keyed_server.url, new_key(keyed_server, "failure"))
    stream = client.responses.create(
        **GREEDY, input="Count from 1 to 1000, one number a line.", max_output_tokens=2000, stream=True
    )
    events = []
    for event in stream:
        events.append(event)
        if event.type == "response.output_text.delta" and len(events) == 5:
            pid = httpx.get(f"{keyed_server.url}/health/ready", timeout=30).json()["models"][CHAT_MODEL]["pid"]
            os.kill(pid, signal.SIGKILL)
    failed = events[-1]
    assert failed.type == "response.failed", [event.type for event in events[-3:]]
    assert failed.response.status == "failed" and failed.response.error.code == "server_error"
    assert "SIGKILL" in failed.response.error.message
    with pytest.raises(openai.NotFoundError):  # a failed response is not stored
        client.responses.retrieve(failed.response.id)
