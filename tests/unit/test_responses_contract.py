"""The contract of OpenAI's Responses API (/v1/responses) in the test process: the response
object, its typed stream events, stored responses (get, delete, previous_response_id, scoped
to API keys), function calls, and its errors. Django's async client calls the views, the fake
engine answers for the model (tests.support.fake_worker); the SDK against the real model is
tested end to end (test_openai_responses)."""

import json

import pytest
from asgiref.sync import sync_to_async

from access.services import create_api_key
from tests.support.fake_worker import Script
from tests.support.responses_events import TEXT_EVENTS
from tests.unit.conftest import CHAT

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER = {
    "type": "function", "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
CALL = json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})


def typed(events) -> list[dict]:
    """The JSON of each typed event, whose `event:` name is its type, numbered in order."""
    bodies = [json.loads(event.data) for event in events]
    assert [event.event for event in events] == [body["type"] for body in bodies]
    assert [body["sequence_number"] for body in bodies] == list(range(len(bodies)))
    return bodies


def output_text(response: dict) -> str:
    return "".join(part["text"] for item in response["output"] if item["type"] == "message"
                   for part in item["content"])


async def test_a_response_object(api, engine):
    engine.script(Script(tokens=("Blue", "."), finish_reason="stop", cached_prompt_tokens=4))
    request = {"model": CHAT, "instructions": "Answer briefly.", "input": "Name a primary colour.",
               "max_output_tokens": 12, "metadata": {"run": "7"}}
    response = (await api.post("/v1/responses", request)).json()
    assert response["id"].startswith("resp_") and response["object"] == "response" and response["model"] == CHAT
    assert (response["status"], response["error"], response["incomplete_details"]) == ("completed", None, None)
    [message] = response["output"]
    assert message["id"].startswith("msg_")
    assert (message["type"], message["role"], message["status"]) == ("message", "assistant", "completed")
    assert message["content"] == [{"type": "output_text", "text": "Blue.", "annotations": [], "logprobs": []}]
    assert (response["instructions"], response["max_output_tokens"]) == ("Answer briefly.", 12)
    assert (response["metadata"], response["store"], response["tool_choice"]) == ({"run": "7"}, True, "auto")
    usage = response["usage"]
    assert usage["output_tokens"] == 2 and usage["input_tokens"] == len(engine.calls[0].prompt)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens_details"] == {"cached_tokens": 4}  # what the engine's prefix cache gave
    assert "system\nAnswer briefly.<|im_end|>" in engine.calls[0].prompt  # the instructions, as a system turn
    assert engine.calls[0].sampling.max_tokens == 12


async def test_a_response_cut_by_max_output_tokens_is_incomplete(api, engine):
    engine.script(Script(finish_reason="length"))
    response = (await api.post("/v1/responses", {"model": CHAT, "input": "Hi", "max_output_tokens": 3})).json()
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"


async def test_the_stream_is_typed_events_that_agree_with_the_response(api, engine):
    engine.script(Script(tokens=("Blue", "."), finish_reason="stop"))
    _, events, _ = await api.stream("/v1/responses", {"model": CHAT, "input": "Name a colour.", "stream": True})
    bodies = typed(events)
    deltas = [body["delta"] for body in bodies if body["type"] == "response.output_text.delta"]
    assert deltas == ["Blue", "."]
    assert [body["type"] for body in bodies] == TEXT_EVENTS[:5] + TEXT_EVENTS[4:] + ["response.completed"]
    created, final = bodies[0]["response"], bodies[-1]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    assert final["id"] == created["id"] and final["status"] == "completed" and output_text(final) == "Blue."
    text_done = next(body for body in bodies if body["type"] == "response.output_text.done")
    assert text_done["text"] == "Blue."
    message_id = final["output"][0]["id"]
    assert bodies[2]["item"]["id"] == bodies[4]["item_id"] == message_id
    stored = (await api.client.get(f"/v1/responses/{final['id']}")).json()
    assert stored == final


async def test_a_stored_response_is_retrieved_then_deleted(api):
    response = (await api.post("/v1/responses", {"model": CHAT, "input": "Hello"})).json()
    assert (await api.client.get(f"/v1/responses/{response['id']}")).json() == response
    deleted = await api.client.delete(f"/v1/responses/{response['id']}")
    assert (deleted.status_code, deleted.json()) == (200, {"id": response["id"], "object": "response", "deleted": True})
    for call in (api.client.get, api.client.delete):
        api.openai_error(await call(f"/v1/responses/{response['id']}"), 404, "invalid_request_error", "not_found")
    unstored = (await api.post("/v1/responses", {"model": CHAT, "input": "Hello", "store": False})).json()
    assert unstored["store"] is False
    api.openai_error(await api.client.get(f"/v1/responses/{unstored['id']}"), 404, "invalid_request_error")


async def test_previous_response_id_puts_the_earlier_turns_first(api, engine):
    engine.script(Script(tokens=("Hello", " Ada")))
    first = (await api.post("/v1/responses", {"model": CHAT, "instructions": "Be brief.", "input": "I am Ada."})).json()
    second = await api.post("/v1/responses", {"model": CHAT, "previous_response_id": first["id"], "input": "Who?"})
    assert second.json()["previous_response_id"] == first["id"]
    prompt = engine.calls[1].prompt
    assert prompt.index("I am Ada.") < prompt.index("Hello Ada") < prompt.index("Who?")
    assert "Be brief." not in prompt  # the instructions are not carried on, as OpenAI does
    response = await api.post("/v1/responses", {"model": CHAT, "previous_response_id": "resp_unknown", "input": "Hi"})
    api.openai_error(response, 404, "invalid_request_error", "previous_response_not_found", "previous_response_id")


async def test_a_keys_responses_are_invisible_to_another_key(api):
    keys = [{"authorization": f"Bearer {(await sync_to_async(create_api_key)(name=name))[1]}"}
            for name in ("owner", "other")]
    response = (await api.post("/v1/responses", {"model": CHAT, "input": "Hi"}, **keys[0])).json()
    assert (await api.client.get(f"/v1/responses/{response['id']}", headers=keys[0])).status_code == 200
    for call in (api.client.get, api.client.delete):
        api.openai_error(await call(f"/v1/responses/{response['id']}", headers=keys[1]), 404, "invalid_request_error")
    response = await api.client.get(f"/v1/responses/{response['id']}", headers={"authorization": "Bearer llm-nope"})
    api.openai_error(response, 401, "authentication_error", "unauthorized")


async def test_a_function_call_item_and_its_output_in_the_next_input(api, engine):
    engine.script(Script.text(CALL, finish_reason="stop"))
    request = {"model": CHAT, "input": "Weather in Paris?", "tools": [WEATHER], "tool_choice": "required"}
    response = (await api.post("/v1/responses", request)).json()
    [call] = response["output"]
    assert call["type"] == "function_call" and call["name"] == "get_weather" and call["status"] == "completed"
    assert call["call_id"].startswith("call_") and call["id"] == "fc_" + call["call_id"].removeprefix("call_")
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    assert response["tools"][0]["name"] == "get_weather" and response["tool_choice"] == "required"
    assert '"name": {"const": "get_weather"}' in engine.calls[0].sampling.json_schema  # the tools' grammar
    answer = await api.post("/v1/responses", {
        "model": CHAT, "previous_response_id": response["id"], "tools": [WEATHER],
        "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": '{"celsius": 21}'}],
    })
    assert answer.json()["output"][0]["type"] == "message"
    assert '{"celsius": 21}' in engine.calls[1].prompt


async def test_a_streamed_call_is_function_call_argument_events_without_text(api, engine):
    engine.script(Script.text(CALL, finish_reason="stop"))
    request = {"model": CHAT, "input": "Weather?", "tools": [WEATHER],
               "tool_choice": {"type": "function", "name": "get_weather"}, "stream": True}
    _, events, _ = await api.stream("/v1/responses", request)
    bodies = typed(events)
    types = [body["type"] for body in bodies]
    assert "response.output_text.delta" not in types
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-3:] == ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    arguments = "".join(body["delta"] for body in bodies if body["type"] == "response.function_call_arguments.delta")
    assert json.loads(arguments) == {"city": "Paris"}
    [item] = bodies[-1]["response"]["output"]
    assert item["type"] == "function_call" and item["arguments"] == arguments
    assert bodies[-1]["response"]["tool_choice"] == {"type": "function", "name": "get_weather"}


async def test_an_engine_failure_mid_stream_ends_with_response_failed_and_is_not_stored(api, engine):
    engine.script(Script(tokens=("a", "b"), crash=True))
    _, events, _ = await api.stream("/v1/responses", {"model": CHAT, "input": "Count.", "stream": True})
    bodies = typed(events)
    assert [body["type"] for body in bodies][-2:] == ["response.output_text.delta", "response.failed"]
    failed = bodies[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert "SIGKILL" in failed["error"]["message"]
    assert output_text(failed) == "ab" and failed["output"][0]["status"] == "incomplete"
    api.openai_error(await api.client.get(f"/v1/responses/{failed['id']}"), 404, "invalid_request_error")


@pytest.mark.parametrize(
    "body, param",
    [
        ({}, "input"),
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": [{"role": "robot", "content": "Hi"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input[0].content"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "", "arguments": "{}"}]}, "input[0].name"),
        ({"input": "Hi", "text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        ({"input": "Hi", "tools": [{"type": "web_search", "name": "search"}]}, "tools[0].type"),
        ({"input": "Hi", "tool_choice": "required"}, "tool_choice"),
        ({"input": "Hi", "tools": [{"type": "function", "name": "f"}],
          "tool_choice": {"type": "function", "name": "g"}}, "tool_choice"),
        ({"input": "Hi", "background": True}, "background"),
        ({"input": "Hi", "max_output_tokens": 100_000}, "max_output_tokens"),
        ({"input": "Hi", "temperature": "0.5"}, "temperature"),
        ({"input": "Hi", "stream": "true"}, "stream"),
    ],
)
async def test_bad_input_is_a_400_in_openais_shape(api, engine, body, param):
    response = await api.post("/v1/responses", {"model": CHAT, **body})
    api.openai_error(response, 400, "invalid_request_error", param=param)
    assert engine.calls == []
