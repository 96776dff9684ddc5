"""The OpenAI-compatible API, called with the official `openai` package (sync and async
clients) against a real Daphne process with the real bundled model."""

import asyncio
import json
import time
import uuid

import httpx
import jsonschema
import openai
import pytest

MODEL = "google/gemma-3-270m"
GREEDY = {"temperature": 0}
FIB = "def fib(n):\n"


def counts(usage) -> tuple[int, int, int]:
    """A usage's token counts, without the prefix cache's share (a repeated prompt may hit it)."""
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens


@pytest.fixture(scope="module")
def client(live_server):
    # No retries: a 429 or 503 must surface as the SDK's error class, not be retried away.
    with openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0, timeout=120) as client:
        yield client


@pytest.fixture
async def async_client(live_server):
    async with openai.AsyncOpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server.url, timeout=120) as http:
        yield http


def test_models_list(client):
    models = {model.id: model for model in client.models.list()}
    assert models[MODEL].object == "model"
    assert models[MODEL].owned_by == "google"
    # Beyond OpenAI's fields: what GET /api/models says of the model.
    assert models[MODEL].context_length == 32768 and models[MODEL].max_tokens_limit == 4096
    assert models[MODEL].defaults["max_tokens"] == 512


def test_completion_equals_the_native_api(client, http):
    native = http.post("/api/generate", json={"prompt": FIB, "max_tokens": 24, **GREEDY}).json()
    completion = client.completions.create(model=MODEL, prompt=FIB, max_tokens=24, **GREEDY)
    assert completion.object == "text_completion"
    assert completion.id.startswith("cmpl-")
    assert completion.model == MODEL
    [choice] = completion.choices
    assert choice.text == native["text"]
    assert choice.finish_reason == "length"
    assert completion.usage.completion_tokens == 24
    assert completion.usage.prompt_tokens == native["prompt_tokens"]
    assert completion.usage.total_tokens == native["prompt_tokens"] + 24


def test_completion_stream_rebuilds_the_text_and_reports_usage(client):
    expected = client.completions.create(model=MODEL, prompt=FIB, max_tokens=24, **GREEDY)
    chunks = list(
        client.completions.create(
            model=MODEL, prompt=FIB, max_tokens=24, stream=True, stream_options={"include_usage": True}, **GREEDY
        )
    )
    text_chunks, usage_chunk = chunks[:-1], chunks[-1]
    assert len({chunk.id for chunk in chunks}) == 1
    assert "".join(chunk.choices[0].text for chunk in text_chunks) == expected.choices[0].text
    assert [chunk.choices[0].finish_reason for chunk in text_chunks][-1] == "length"
    assert all(chunk.usage is None for chunk in text_chunks)
    assert usage_chunk.choices == []
    assert counts(usage_chunk.usage) == counts(expected.usage)


def test_stream_without_include_usage_has_no_usage_chunk(client):
    chunks = list(client.completions.create(model=MODEL, prompt="Hello", max_tokens=4, stream=True, **GREEDY))
    assert all(chunk.choices for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stop_string(client):
    completion = client.completions.create(model=MODEL, prompt=FIB, max_tokens=40, stop="return", **GREEDY)
    assert completion.choices[0].finish_reason == "stop"
    assert "return" not in completion.choices[0].text


async def test_chat_completion_and_its_stream_agree(async_client):
    request = {
        "model": MODEL,
        "messages": [
            {"role": "developer", "content": "Answer briefly."},
            {"role": "user", "content": [{"type": "text", "text": "Write a short poem "}, {"type": "text", "text": "about the sea."}]},
        ],
        "max_completion_tokens": 20,
        "seed": 7,
        **GREEDY,
    }
    completion = await async_client.chat.completions.create(**request)
    assert completion.object == "chat.completion"
    message = completion.choices[0].message
    assert message.role == "assistant" and message.content
    assert completion.usage.completion_tokens <= 20

    stream = await async_client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    assert chunks[0].object == "chat.completion.chunk"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == message.content
    finish = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert finish == [completion.choices[0].finish_reason]
    assert counts(chunks[-1].usage) == counts(completion.usage)


def test_a_chats_second_turn_reports_the_history_the_prefix_cache_gave(client):
    # The bundled entries keep a prefix cache: a second turn re-sends the first, whose tokens
    # the engine then takes from the cache instead of prefilling them again.
    messages = [{"role": "user", "content": f"Note {uuid.uuid4().hex}: list three facts about the sea."}]
    first = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=16, **GREEDY)
    # A prompt the engine has never seen: at most its chat template's opening, which every chat shares, is reused.
    assert first.usage.prompt_tokens_details.cached_tokens < first.usage.prompt_tokens // 2
    messages += [{"role": "assistant", "content": first.choices[0].message.content},
                 {"role": "user", "content": "And one more?"}]
    second = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=4, **GREEDY)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert first.usage.prompt_tokens // 2 < cached < second.usage.prompt_tokens, second.usage


async def test_concurrent_async_requests_all_complete(async_client):
    """The test server runs one generation at a time with one waiting place: the second waits, both finish."""
    prompts = ["The capital of France is", "Once upon a time"]
    results = await asyncio.gather(
        *(async_client.completions.create(model=MODEL, prompt=prompt, max_tokens=8, **GREEDY) for prompt in prompts)
    )
    assert [result.usage.completion_tokens for result in results] == [8, 8]
    alone = await async_client.completions.create(model=MODEL, prompt=prompts[1], max_tokens=8, **GREEDY)
    assert results[1].choices[0].text == alone.choices[0].text


async def test_closing_a_stream_cancels_its_generation(async_client):
    stream = await async_client.completions.create(
        model=MODEL, prompt="1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", max_tokens=2000, stream=True, **GREEDY
    )
    received = 0
    async for _ in stream:
        received += 1
        if received == 3:
            break
    await stream.close()
    # One generation at a time on the test server: a generation still running would hold the slot.
    started = time.monotonic()
    completion = await async_client.completions.create(model=MODEL, prompt="Hello", max_tokens=2, **GREEDY)
    assert completion.usage.completion_tokens == 2
    assert time.monotonic() - started < 8


# --- errors, in OpenAI's shape and the SDK's classes --------------------------------------------


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="nobody/nothing", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.code == "model_not_found"
    assert raised.value.param == "model"
    assert raised.value.type == "invalid_request_error"


def test_disabled_model_is_permission_denied(live_server, client):
    live_server.change_catalog(
        "from catalog.models import ModelEntry; ModelEntry.objects.create(model_id='local/disabled-openai', "
        "display_name='Off', source='gguf_file', location='/nowhere', filename='x.gguf', enabled=False)",
    )
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.completions.create(model="local/disabled-openai", prompt="hi")
    assert raised.value.code == "model_not_allowed"
    assert "local/disabled-openai" not in [model.id for model in client.models.list()]


@pytest.mark.parametrize(
    "parameters, param",
    [
        # Each case's status and field: tests/unit/test_openai_contract.py; here, that the SDK reads them.
        ({"temperature": 2.5}, "temperature"),
        ({"logit_bias": {"12": 101}}, "logit_bias"),
        ({"prompt": ["one"] * 17}, "prompt"),
    ],
)
def test_bad_completion_parameters_are_bad_requests(client, parameters, param):
    with pytest.raises(openai.BadRequestError) as raised:
        client.completions.create(**{"model": MODEL, "prompt": "hi", "max_tokens": 2, **parameters})
    assert raised.value.param == param
    assert raised.value.type == "invalid_request_error"
    assert raised.value.message


@pytest.mark.parametrize(
    "parameters, param",
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "x", "tool_calls": []}]}, "messages[0].tool_calls"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages[0].content"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function",
          "function": {"name": "g"}}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": "AAA"}, "tool_choice"),  # its message has braces, which DRF formats: a 500 before
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "nonsense"}}}],
          "tool_choice": "required"}, "tools"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"max_completion_tokens": 5000}, "max_completion_tokens"),  # over the limit: the core's max_tokens
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),  # as OpenAI: only with logprobs true
        ({"logprobs": False, "top_logprobs": 0}, "top_logprobs"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}},
         "response_format"),
    ],
)
def test_bad_chat_parameters_are_bad_requests(client, parameters, param):
    request = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **parameters}
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(**request)
    assert raised.value.param == param


def test_a_refused_parameter_is_named_not_repeated(http):
    """The message names the parameter; it does not repeat its value (a whole list of tools was repeated)."""
    body = {"model": MODEL, "prompt": "hi", "max_tokens": 1, "suffix": "def unused():\n    return 1\n" * 20}
    error = http.post("/v1/completions", json=body).json()["error"]
    assert error["param"] == "suffix"
    assert error["message"] == 'suffix is not supported by this service (only "" or null is accepted).'


def test_neutral_values_of_unsupported_parameters_are_accepted(client):
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2, n=1, logprobs=False,
        presence_penalty=0, frequency_penalty=0, response_format={"type": "text"}, user="someone", **GREEDY,
    )
    assert completion.usage.completion_tokens == 2


# --- what the engine offers beyond the native API ---------------------------------------

CHAT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer", "minimum": 0, "maximum": 150}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


# Bounded strings and numbers: the grammar then ends every answer well within max_tokens.
ITEM = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 16},
        "count": {"type": "integer", "minimum": 0, "maximum": 999},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 2},
    },
    "required": ["name", "count", "tags"],
    "additionalProperties": False,
}
SUBJECTS = ["a fruit", "a city", "a planet", "a tool", "a bird", "a colour", "a river", "a song", "a game", "a tree",
            "a metal", "a dance", "a sport", "a cheese", "a flower", "a ship", "a star", "a bread", "a stone", "a fish"]


@pytest.mark.parametrize("model", [MODEL, "HuggingFaceTB/SmolLM2-135M-Instruct"])
async def test_twenty_answers_of_each_bundled_model_are_json_of_the_schema(async_client, model):
    """Twenty prompts, each streamed and not, to the base model and the instruct model: every answer
    parses and validates."""
    response_format = {"type": "json_schema", "json_schema": {"name": "item", "schema": ITEM, "strict": True}}

    async def answer(subject: str, stream: bool) -> str:
        request = dict(model=model, messages=[{"role": "user", "content": f"Describe {subject} as JSON."}],
                       max_tokens=96, response_format=response_format)
        if not stream:
            completion = await async_client.chat.completions.create(**request)
            assert completion.choices[0].finish_reason == "stop", completion
            return completion.choices[0].message.content
        chunks = [chunk async for chunk in await async_client.chat.completions.create(stream=True, **request)]
        assert chunks[-1].choices[0].finish_reason == "stop"
        return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)

    for subject in SUBJECTS:
        for stream in (False, True):
            jsonschema.validate(json.loads(await answer(subject, stream)), ITEM)


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_output_is_json_of_the_schema(client, stream):
    request = dict(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Describe a person as JSON."}], max_tokens=60,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}, **GREEDY,
    )
    if stream:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
            stream=True, **request) if chunk.choices)
    else:
        completion = client.chat.completions.create(**request)
        assert completion.choices[0].finish_reason == "stop"
        text = completion.choices[0].message.content
    person = json.loads(text)
    jsonschema.validate(person, PERSON)


def test_a_schema_the_engine_refuses_in_a_stream_is_an_error_event_naming_response_format(http):
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": True,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200  # the engine compiles the schema once the stream has started
        errors = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {\"error\"")]
    (error,) = errors
    assert error["error"]["param"] == "response_format" and error["error"]["type"] == "invalid_request_error"


def test_json_object_output_is_a_json_object_even_from_the_base_model(client):
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=40,
        response_format={"type": "json_object"}, **GREEDY,
    )
    text = completion.choices[0].message.content
    assert text.lstrip().startswith("{")
    if completion.choices[0].finish_reason == "stop":  # else cut by max_tokens, still a JSON prefix
        assert isinstance(json.loads(text), dict)


def test_chat_logprobs_and_their_alternatives(client, http):
    completion = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Name a primary colour."}], max_tokens=8,
        logprobs=True, top_logprobs=3, **GREEDY,
    )
    content = completion.choices[0].logprobs.content
    assert len(content) == completion.usage.completion_tokens == 8
    assert "".join(token.token for token in content) == completion.choices[0].message.content
    for token in content:
        assert token.logprob <= 0 and len(token.top_logprobs) == 3
        assert bytes(token.bytes).decode() == token.token
        # Greedy: the chosen token is the most likely one.
        assert token.top_logprobs[0].logprob == pytest.approx(token.logprob, abs=1e-4)
        assert token.top_logprobs[0].token == token.token
    streamed = [chunk for chunk in client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Name a primary colour."}], max_tokens=8,
        logprobs=True, top_logprobs=3, stream=True, **GREEDY) if chunk.choices and chunk.choices[0].logprobs]
    assert [t.token for chunk in streamed for t in chunk.choices[0].logprobs.content] == [t.token for t in content]
    without = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=2, **GREEDY)
    assert without.choices[0].logprobs is None


def test_completion_logprobs(client):
    completion = client.completions.create(model=MODEL, prompt=FIB, max_tokens=6, logprobs=2, **GREEDY)
    logprobs = completion.choices[0].logprobs
    assert "".join(logprobs.tokens) == completion.choices[0].text
    assert len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == len(logprobs.tokens) == 6
    assert logprobs.text_offset == [sum(len(t) for t in logprobs.tokens[:i]) for i in range(6)]
    assert all(len(top) <= 2 and max(top.values()) == pytest.approx(lp, abs=1e-4)
               for top, lp in zip(logprobs.top_logprobs, logprobs.token_logprobs))


def test_logprobs_of_tokens_that_sampling_excludes_are_finite(client):
    """The engine reports -inf for them, which JSON cannot carry: the fuzz got a 500 with these parameters."""
    completion = client.completions.create(
        model=MODEL, prompt="\u00b9\u001d#:\u00cb", max_tokens=2, logprobs=2, top_p=0.0, stop="0",
        frequency_penalty=1.7277714566962654, extra_body={"repetition_penalty": 0.01},
    )
    logprobs = completion.choices[0].logprobs
    values = logprobs.token_logprobs + [value for top in logprobs.top_logprobs for value in top.values()]
    assert values and all(-9999.0 <= value <= 0 for value in values)
    assert -9999.0 in values  # the case itself: a token with no chance at all


def test_logit_bias_bans_a_token_and_the_penalties_change_the_text(client, http):
    prompt = {"model": MODEL, "prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 12, **GREEDY}
    plain = client.completions.create(**prompt).choices[0].text
    tokens = http.post("/api/tokenize", json={"model": MODEL, "text": plain}).json()["tokens"]
    banned = client.completions.create(**prompt, logit_bias={str(tokens[0]): -100}).choices[0].text
    assert banned != plain
    first = http.post("/api/tokenize", json={"model": MODEL, "text": banned}).json()["tokens"][0]
    assert first != tokens[0]
    penalised = client.completions.create(**prompt, frequency_penalty=2.0, presence_penalty=2.0).choices[0].text
    assert penalised != plain  # a counting pattern repeats ", " and digits: penalties break it
    # An extension of OpenAI's parameters: the SDK sends it in extra_body. Greedy keeps the top token.
    assert client.completions.create(**prompt, extra_body={"min_p": 0.5}).choices[0].text == plain


VOCABULARIES = {MODEL: 262144, CHAT_MODEL: 49152}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "model, token", [(MODEL, 262144), (CHAT_MODEL, 49152), (CHAT_MODEL, 2**32), (MODEL, 10**30), (MODEL, 2**32 - 1)]
)
def test_logit_bias_ids_outside_the_vocabulary_are_bad_requests(http, model, token, stream):
    """A 400 before anything starts, streamed or not (ids of 2^32 and over were a 503 from the engine,
    those between the vocabulary and 2^32 were ignored)."""
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    for path, request in {"/v1/completions": {"prompt": "hi"}, "/v1/chat/completions": chat}.items():
        body = {"model": model, "max_tokens": 1, "stream": stream, "logit_bias": {"0": 1, str(token): 1}, **request}
        response = http.post(path, json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == "logit_bias"
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert str(token)[:20] in response.json()["error"]["message"]
    last = {"model": model, "max_tokens": 1, "stream": stream, "logit_bias": {str(VOCABULARIES[model] - 1): 1}}
    assert http.post("/v1/completions", json={**last, "prompt": "hi"}).status_code == 200


def test_tokenize_and_detokenize(http):
    tokenized = http.post("/api/tokenize", json={"text": "The capital of France is"}).json()
    assert tokenized["model"] == MODEL and tokenized["count"] == len(tokenized["tokens"]) == 5
    assert http.post("/api/detokenize", json={"tokens": tokenized["tokens"]}).json() == {
        "model": MODEL, "text": "The capital of France is"}
    # Each model's own tokenizer; special tokens written as text are parsed.
    chat = http.post("/api/tokenize", json={"model": CHAT_MODEL, "text": "<|im_start|>Hello"}).json()
    assert chat["tokens"][0] == 1 and chat["model"] == CHAT_MODEL
    for bad in [{}, {"text": None}, {"model": "no/such", "text": "x"}, {"tokens": [-1]}, {"tokens": "1"}]:
        url = "/api/detokenize" if "tokens" in bad else "/api/tokenize"  # {}: no text
        response = http.post(url, json=bad)
        assert response.status_code in (400, 404) and response.json()["error"]["code"], bad


def test_n_choices_each_with_its_index_and_usage_summed(client):
    request = dict(model=MODEL, prompt="Once upon a time", max_tokens=6, temperature=1.0)
    completion = client.completions.create(n=3, **request)
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    assert completion.usage.completion_tokens == 18  # each choice ran to max_tokens
    single = client.completions.create(n=1, **request)
    assert completion.usage.prompt_tokens == single.usage.prompt_tokens  # the prompt counted once

    chat = dict(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=5, **GREEDY)
    greedy = client.chat.completions.create(n=2, **chat)
    assert greedy.choices[0].message.content == greedy.choices[1].message.content  # greedy: the same twice
    texts = {0: "", 1: ""}
    chunks = list(client.chat.completions.create(n=2, stream=True, stream_options={"include_usage": True}, **chat))
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == {0: greedy.choices[0].message.content, 1: greedy.choices[1].message.content}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"] * 2
    assert chunks[-1].usage.completion_tokens == greedy.usage.completion_tokens == 10


def test_prompt_over_the_context_is_a_bad_request_with_the_counts(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.completions.create(model=MODEL, prompt="hello " * 33000, max_tokens=2)
    assert raised.value.code == "context_length_exceeded"
    assert "32768" in raised.value.message and "33002" in raised.value.message


def test_malformed_json_and_wrong_content_type_in_openai_shape(http):
    response = http.post("/v1/completions", content=b'{"prompt": ', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["code"] == "parse_error"
    response = http.post("/v1/chat/completions", content=b"hi", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_schema_documents_the_openai_endpoints(http):
    schema = http.get("/api/schema/", headers={"accept": "application/json"}).json()
    for path in ["/v1/models", "/v1/completions", "/v1/chat/completions"]:
        assert path in schema["paths"], path
    chat = schema["paths"]["/v1/chat/completions"]["post"]
    assert {"application/json", "text/event-stream"} <= set(chat["responses"]["200"]["content"])
    assert {"400", "404", "429"} <= set(chat["responses"])


def test_a_stream_requested_with_the_sse_accept_header(http):
    request = {"model": MODEL, "prompt": "Hello", "max_tokens": 3, "stream": True, **GREEDY}
    with http.stream("POST", "/v1/completions", json=request, headers={"accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
