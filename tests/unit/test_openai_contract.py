"""The OpenAI-compatible API's contract in the test process: /v1/models, /v1/completions and
/v1/chat/completions (their chunks, logprobs, tools and tool_calls deltas) and OpenAI's error
shape for each status. Django's async client calls the views, the fake engine answers for the
model (tests.support.fake_worker); the official SDKs against the real model are tested end to
end (test_openai_api, test_openai_tools)."""

import json

import pytest
from asgiref.sync import sync_to_async

from access.services import create_api_key
from common.errors import InvalidRequest
from tests.support.fake_worker import Script
from tests.unit.conftest import BASE, CHAT

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = BASE
HI = [{"role": "user", "content": "Hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather", "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})


def chunks_of(events) -> list[dict]:
    """The JSON chunks of an OpenAI stream, which must end with `data: [DONE]`."""
    assert all(event.event == "message" for event in events)
    assert events[-1].data == "[DONE]"
    return [json.loads(event.data) for event in events[:-1]]


# --- models --------------------------------------------------------------------------------------------


async def test_models_list_and_one_model(api):
    listed = (await api.client.get("/v1/models")).json()
    assert listed["object"] == "list"
    base = next(model for model in listed["data"] if model["id"] == MODEL)
    assert set(base) == {"id", "object", "created", "owned_by", "aliases", "context_length", "max_tokens_limit",
                          "defaults"}
    assert (base["object"], base["owned_by"], base["max_tokens_limit"]) == ("model", "fake", 4096)
    assert isinstance(base["created"], int) and base["aliases"] == ["base"]
    for name in (MODEL, "base"):
        assert (await api.client.get(f"/v1/models/{name}")).json() == base  # an alias answers with the id
    api.openai_error(await api.client.get("/v1/models/nobody/nothing"), 404, "invalid_request_error",
                     "model_not_found", "model")


# --- completions ----------------------------------------------------------------------------------------


async def test_completion_object_choices_and_usage(api, engine):
    engine.script(Script(tokens=(" the", " capital")))
    request = {"model": MODEL, "prompt": "The capital of France is", "max_tokens": 2}
    response = await api.post("/v1/completions", request)
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("cmpl-") and isinstance(body["created"], int)
    assert (body["object"], body["model"]) == ("text_completion", MODEL)
    assert body["choices"] == [{"index": 0, "text": " the capital", "logprobs": None, "finish_reason": "length"}]
    prompt_tokens = len("<bos>The capital of France is")
    assert body["usage"] == {"prompt_tokens": prompt_tokens, "completion_tokens": 2, "total_tokens": prompt_tokens + 2,
                             "prompt_tokens_details": {"cached_tokens": 0}}


async def test_usage_counts_the_prompt_tokens_the_prefix_cache_gave_once_per_prompt(api, engine):
    # n=2: two sequences of one prompt, each reporting the same cached prefix; OpenAI counts the prompt once.
    engine.script(Script(tokens=("a",), cached_prompt_tokens=5), Script(tokens=("b",), cached_prompt_tokens=5))
    body = (await api.post("/v1/chat/completions", {"model": MODEL, "messages": HI, "n": 2})).json()
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 5}
    engine.script(Script(tokens=("a",), cached_prompt_tokens=3))
    stream = {"model": MODEL, "messages": HI, "stream": True, "stream_options": {"include_usage": True}}
    _, events, _ = await api.stream("/v1/chat/completions", stream)
    assert chunks_of(events)[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 3}


async def test_completion_stream_chunks_share_an_id_and_end_with_usage_then_done(api, engine):
    engine.script(Script(tokens=("a", "b"), finish_reason="stop"))
    body = {"model": MODEL, "prompt": "x", "stream": True, "stream_options": {"include_usage": True}}
    response, events, _ = await api.stream("/v1/completions", body)
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    chunks = chunks_of(events)
    assert len({chunk["id"] for chunk in chunks}) == 1 and chunks[0]["id"].startswith("cmpl-")
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    *text_chunks, usage_chunk = chunks
    assert [chunk["choices"][0]["text"] for chunk in text_chunks] == ["a", "b", ""]
    assert [chunk["choices"][0]["finish_reason"] for chunk in text_chunks] == [None, None, "stop"]
    assert all(chunk["usage"] is None for chunk in text_chunks)  # the key on every chunk once usage is asked for
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 6, "completion_tokens": 2, "total_tokens": 8,
                                    "prompt_tokens_details": {"cached_tokens": 0}}


async def test_a_stream_without_include_usage_has_no_usage(api):
    _, events, _ = await api.stream("/v1/completions", {"model": MODEL, "prompt": "x", "stream": True})
    chunks = chunks_of(events)
    assert all(chunk["choices"] and "usage" not in chunk for chunk in chunks)


async def test_completion_logprobs(api, engine):
    engine.script(Script(tokens=("ab", "c")))
    body = (await api.post("/v1/completions", {"model": MODEL, "prompt": "x", "logprobs": 2})).json()
    assert engine.calls[0].sampling.top_logprobs == 2
    assert body["choices"][0]["logprobs"] == {
        "tokens": ["ab", "c"], "token_logprobs": [-0.25, -0.25], "top_logprobs": [{"ab": -0.25, "x": -3.5},
                                                                                  {"c": -0.25, "x": -3.5}],
        "text_offset": [0, 2],
    }


async def test_n_choices_each_with_its_index_and_the_prompt_counted_once(api, engine):
    body = (await api.post("/v1/completions", {"model": MODEL, "prompt": ["x", "yy"], "n": 2})).json()
    assert [choice["index"] for choice in body["choices"]] == [0, 1, 2, 3]
    assert [call.prompt for call in engine.calls] == ["<bos>x", "<bos>x", "<bos>yy", "<bos>yy"]
    assert body["usage"]["prompt_tokens"] == len("<bos>x") + len("<bos>yy")
    assert body["usage"]["completion_tokens"] == 4 * len(engine.default.tokens)


# --- chat completions ------------------------------------------------------------------------------------


async def test_chat_completion_object(api, engine):
    engine.script(Script(tokens=("Hi", "!"), finish_reason="stop"))
    body = (await api.post("/v1/chat/completions", {"model": MODEL, "messages": HI, "max_completion_tokens": 5})).json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert body["usage"]["completion_tokens"] == 2
    assert engine.calls[0].sampling.max_tokens == 5


async def test_chat_stream_opens_with_the_role_and_ends_with_finish_reason_usage_and_done(api, engine):
    engine.script(Script(tokens=("Hi", "!"), finish_reason="length"))
    body = {"model": MODEL, "messages": HI, "stream": True, "stream_options": {"include_usage": True}}
    _, events, _ = await api.stream("/v1/chat/completions", body)
    chunks = chunks_of(events)
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "Hi"}, {"content": "!"}, {}]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks if chunk["choices"]] == [None] * 3 + ["length"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2


async def test_chat_logprobs_and_their_alternatives(api, engine):
    engine.script(Script(tokens=("é",)), Script(tokens=("é",)))
    request = {"model": MODEL, "messages": HI, "logprobs": True, "top_logprobs": 2}
    body = (await api.post("/v1/chat/completions", request)).json()
    assert body["choices"][0]["logprobs"] == {"content": [{
        "token": "é", "logprob": -0.25, "bytes": [195, 169],
        "top_logprobs": [{"token": "é", "logprob": -0.25, "bytes": [195, 169]},
                         {"token": "x", "logprob": -3.5, "bytes": [120]}],
    }]}
    _, events, _ = await api.stream("/v1/chat/completions", {**request, "stream": True})
    streamed = [chunk["choices"][0]["logprobs"] for chunk in chunks_of(events) if chunk["choices"][0]["logprobs"]]
    assert streamed == [body["choices"][0]["logprobs"]]


# --- tools ------------------------------------------------------------------------------------------------


async def test_a_required_call_is_constrained_by_the_tools_schema_and_answered_as_tool_calls(api, engine):
    engine.script(Script.text(CALL, finish_reason="stop"))
    request = {"model": MODEL, "messages": HI, "tools": [WEATHER], "tool_choice": "required"}
    body = (await api.post("/v1/chat/completions", request)).json()
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    schema = json.loads(engine.calls[0].sampling.json_schema)  # the grammar the model's output must follow
    assert schema["properties"]["name"] == {"const": "get_weather"}
    assert "get_weather" in engine.calls[0].prompt  # the tools are described to a template without them


async def test_streamed_calls_open_with_id_and_name_then_their_arguments_in_fragments(api, engine):
    engine.script(Script.text(CALL, finish_reason="stop"))
    request = {"model": MODEL, "messages": HI, "tools": [WEATHER], "tool_choice": "required", "stream": True}
    _, events, _ = await api.stream("/v1/chat/completions", request)
    chunks = chunks_of(events)
    fragments = [chunk["choices"][0]["delta"]["tool_calls"][0] for chunk in chunks
                 if "tool_calls" in chunk["choices"][0]["delta"]]
    first = fragments[0]
    assert first["index"] == 0 and first["id"].startswith("call_") and first["type"] == "function"
    assert first["function"] == {"name": "get_weather", "arguments": ""}
    assert all(set(fragment) == {"index", "function"} for fragment in fragments[1:])
    assert json.loads("".join(fragment["function"]["arguments"] for fragment in fragments)) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert not any(chunk["choices"][0]["delta"].get("content") for chunk in chunks)  # no JSON leaks as text


async def test_auto_may_answer_with_text(api, engine):
    engine.script(Script.text(json.dumps({"content": "It is sunny."}), finish_reason="stop"))
    body = (await api.post("/v1/chat/completions", {"model": MODEL, "messages": HI, "tools": [WEATHER]})).json()
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "It is sunny."}
    assert body["choices"][0]["finish_reason"] == "stop"


async def test_a_tool_result_in_the_history_reaches_the_prompt(api, engine):
    history = [
        *HI,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 24 degrees."},
    ]
    request = {"model": MODEL, "messages": history, "tools": [WEATHER], "tool_choice": "none"}
    assert (await api.post("/v1/chat/completions", request)).status_code == 200
    assert "Sunny, 24 degrees." in engine.calls[0].prompt and engine.calls[0].sampling.json_schema is None


# --- errors in OpenAI's shape -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parameters, param",
    [
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"presence_penalty": 2.5}, "presence_penalty"),
        ({"frequency_penalty": -3}, "frequency_penalty"),
        ({"logit_bias": {"12": 101}}, "logit_bias"),
        ({"prompt": ["one"] * 17}, "prompt"),
        ({"prompt": ["one", ""]}, "prompt"),
        ({"prompt": [[1, 2], [3]]}, "prompt"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 5000}, "max_tokens"),
        ({"n": 9}, "n"),
        ({"best_of": 2}, "best_of"),
        ({"logprobs": 6}, "logprobs"),
        ({"echo": True}, "echo"),
        ({"logit_bias": {"abc": 1}}, "logit_bias"),
        ({"logit_bias": {str(0x110000): 1}}, "logit_bias"),  # outside the (fake) vocabulary
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": "a\x00b"}, "prompt"),
        ({"top_k": 10**30, "stream": True}, "top_k"),
        ({"suffix": "x"}, "suffix"),
    ],
)
async def test_bad_completion_parameters_are_400_naming_the_param(api, engine, parameters, param):
    response = await api.post("/v1/completions", {"model": MODEL, "prompt": "hi", "max_tokens": 2, **parameters})
    api.openai_error(response, 400, "invalid_request_error", param=param)
    assert engine.calls == []


@pytest.mark.parametrize(
    "parameters, param",
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages[0].content"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": "AAA"}, "tool_choice"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"max_completion_tokens": 5000}, "max_completion_tokens"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
    ],
)
async def test_bad_chat_parameters_are_400_naming_the_param(api, parameters, param):
    request = {"model": MODEL, "messages": HI, "max_tokens": 2, **parameters}
    api.openai_error(await api.post("/v1/chat/completions", request), 400, "invalid_request_error", param=param)


async def test_a_prompt_over_the_context_is_400_context_length_exceeded(api, engine):
    engine.context_length = 10
    response = await api.post("/v1/completions", {"model": MODEL, "prompt": "y" * 20})
    error = api.openai_error(response, 400, "invalid_request_error", "context_length_exceeded", "prompt")
    assert "25" in error["message"] and "10" in error["message"]


async def test_malformed_json_wrong_type_and_oversized_bodies_in_openai_shape(api, settings):
    api.openai_error(await api.post("/v1/completions", b'{"prompt": '), 400, "invalid_request_error", "parse_error")
    response = await api.post("/v1/chat/completions", b"hi", content_type="text/plain")
    api.openai_error(response, 415, "invalid_request_error", "unsupported_media_type")
    big = {"model": MODEL, "prompt": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}
    api.openai_error(await api.post("/v1/completions", big), 413, "invalid_request_error", "request_too_large")


async def test_unknown_and_disabled_models_and_keys_in_openai_shape(api, settings):
    api.openai_error(await api.post("/v1/chat/completions", {"model": "nobody/nothing", "messages": HI}), 404,
                     "invalid_request_error", "model_not_found", "model")
    await api.disable(MODEL)
    api.openai_error(await api.post("/v1/completions", {"model": MODEL, "prompt": "x"}), 403, "permission_error",
                     "model_not_allowed", "model")
    assert MODEL not in [model["id"] for model in (await api.client.get("/v1/models")).json()["data"]]
    settings.LLM_REQUIRE_API_KEY = True
    response = await api.client.get("/v1/models")
    api.openai_error(response, 401, "authentication_error", "unauthorized")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


async def test_a_key_over_its_limit_is_429_rate_limit_error(api):
    _, secret = await sync_to_async(create_api_key)(name="one", requests_per_minute=1)
    key = {"authorization": f"Bearer {secret}"}
    assert (await api.post("/v1/completions", {"model": MODEL, "prompt": "x"}, **key)).status_code == 200
    response = await api.post("/v1/completions", {"model": MODEL, "prompt": "x"}, **key)
    api.openai_error(response, 429, "rate_limit_error", "rate_limited")
    assert int(response["Retry-After"]) >= 1


async def test_overload_is_429_and_an_unloadable_model_503_server_error(busy_api, busy_engine):
    busy_engine.script(Script(hang=True))
    running = await busy_api.post("/v1/completions", {"model": MODEL, "prompt": "x", "stream": True})
    response = await busy_api.post("/v1/completions", {"model": MODEL, "prompt": "x"})
    busy_api.openai_error(response, 429, "rate_limit_error", "overloaded")
    await busy_api.read_then_leave(running, 1)
    busy_engine.load_failures[CHAT] = "boom"
    response = await busy_api.post("/v1/chat/completions", {"messages": HI})
    busy_api.openai_error(response, 503, "server_error", "model_unavailable")


async def test_a_failure_after_the_stream_started_is_a_data_error_event_naming_the_param(api, engine):
    engine.script(Script(tokens=("{",), failure=InvalidRequest("The engine cannot compile it.", field="json_schema")))
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    request = {"model": MODEL, "messages": HI, "stream": True, "response_format": schema}
    _, events, _ = await api.stream("/v1/chat/completions", request)
    assert all(event.event == "message" for event in events) and events[-1].data != "[DONE]"
    error = json.loads(events[-1].data)["error"]
    assert error == {"message": "The engine cannot compile it.", "type": "invalid_request_error",
                     "param": "response_format", "code": "invalid_request"}
