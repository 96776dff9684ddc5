"""The native API's contract in the test process: /api/generate, /api/chat and their SSE
streams, /api/models, the tokenizer, the health probes, and every error as the service
answers it. Django's async client calls the views, the fake engine (tests.support.fake_worker)
answers for the model; what the real model writes is tested end to end (test_native_api)."""

import json

import pytest
from asgiref.sync import sync_to_async

from access.services import create_api_key
from catalog.models import ModelEntry
from common.errors import EngineFailed
from generation.engine.model_files import prepare_gguf
from generation.lifecycle import runtime
from tests.support.fake_worker import Script
from tests.support.tiny_gguf import write_tiny_gguf
from tests.unit.conftest import BASE, CHAT

pytestmark = pytest.mark.django_db(transaction=True)

HI = [{"role": "user", "content": "Hi"}]


# --- generate ------------------------------------------------------------------------------


async def test_generate_answers_the_text_and_its_counts(api, engine):
    engine.script(Script(tokens=(" the", " capital")))
    request = {"prompt": "The capital of France is", "max_tokens": 2, "temperature": 0}
    response = await api.post("/api/generate", request)
    assert response.status_code == 200
    assert response.json() == {
        "model": BASE,
        "text": " the capital",
        "tokens_generated": 2,
        "prompt_tokens": len("<bos>The capital of France is"),  # the fake counts a token per character
        "finish_reason": "length",
    }
    [call] = engine.calls
    assert call.prompt == "<bos>The capital of France is"
    assert call.keep_leading_whitespace  # a raw continuation keeps its first space
    assert (call.sampling.max_tokens, call.sampling.temperature) == (2, 0)
    assert call.released and not call.cancelled


@pytest.mark.parametrize(
    "engine_says, stop, answered", [("stop", None, "eos"), ("stop", ["."], "stop"), ("length", None, "length")]
)
async def test_finish_reason_tells_the_models_end_from_a_stop_sequence(api, engine, engine_says, stop, answered):
    engine.script(Script(finish_reason=engine_says))
    body = {"prompt": "x", **({"stop": stop} if stop else {})}
    assert (await api.post("/api/generate", body)).json()["finish_reason"] == answered


async def test_the_engines_prompt_count_is_reported_else_the_services(api, engine):
    engine.script(Script(prompt_tokens=42), Script(prompt_tokens=0))
    assert (await api.post("/api/generate", {"prompt": "Hello"})).json()["prompt_tokens"] == 42
    assert (await api.post("/api/generate", {"prompt": "Hello"})).json()["prompt_tokens"] == len("<bos>Hello")


# --- SSE framing -----------------------------------------------------------------------------


async def test_stream_frames_each_delta_as_an_event_and_ends_with_done(api, engine):
    tokens = ("def", " fib(n):\n", "    ", "return\n\n", "x\r\ny")
    engine.script(Script(tokens=tokens), Script(tokens=tokens))
    expected = (await api.post("/api/generate", {"prompt": "def fib(n):\n"})).json()
    response, events, comments = await api.stream("/api/generate/stream", {"prompt": "def fib(n):\n"})
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    deltas = [event for event in events if event.event == "message"]
    assert [event.data for event in deltas] == ["def", " fib(n):\n", "    ", "return\n\n", "x\ny"]  # CRLF reads as LF
    assert "".join(tokens[:4]) == "".join(event.data for event in deltas[:4]) == expected["text"][:-4]
    assert events[-1].event == "done"
    assert json.loads(events[-1].data) == {
        "model": BASE, "finish_reason": "length", "tokens_generated": len(tokens),
        "prompt_tokens": len("<bos>def fib(n):\n"),
    }
    assert comments == 0


async def test_a_delta_with_line_breaks_is_several_data_lines(api, engine):
    engine.script(Script(tokens=("a\nb",)))
    response = await api.post("/api/generate/stream", {"prompt": "x"})
    body = b"".join([chunk async for chunk in response])
    assert body.startswith(b"data: a\ndata: b\n\nevent: done\ndata: {")
    assert body.endswith(b"}\n\n")


async def test_keepalive_comments_during_a_silence(api, engine, settings):
    settings.LLM_SSE_KEEPALIVE_SECONDS = 0.01
    engine.script(Script(tokens=("slow",), delay=0.1))
    _, events, comments = await api.stream("/api/generate/stream", {"prompt": "x"})
    assert comments >= 2
    assert [event.event for event in events] == ["message", "done"]


async def test_a_failure_after_the_stream_started_is_an_error_event(api, engine):
    engine.script(Script(tokens=("Hello",), failure=EngineFailed("The engine failed: boom")))
    _, events, _ = await api.stream("/api/generate/stream", {"prompt": "x"})
    assert [event.event for event in events] == ["message", "error"]
    assert json.loads(events[1].data) == {"error": {"code": "engine_error", "message": "The engine failed: boom"}}


async def test_a_crashed_worker_ends_the_stream_with_an_error_and_the_next_request_starts_another(api, engine):
    engine.script(Script(tokens=("a", "b"), crash=True))
    _, events, _ = await api.stream("/api/generate/stream", {"prompt": "x"})
    assert [event.event for event in events] == ["message", "message", "error"]
    error = json.loads(events[-1].data)["error"]
    assert error["code"] == "engine_error" and "ended unexpectedly (killed by SIGKILL)" in error["message"]
    ready = (await api.client.get("/health/ready")).json()
    assert ready["models"][BASE]["state"] == "crashed"
    assert (await api.post("/api/generate", {"prompt": "x"})).status_code == 200
    assert [worker.config.model_id for worker in engine.workers] == [BASE, BASE]  # a new worker


async def test_a_client_that_leaves_cancels_its_generation_and_frees_its_slot(api, engine):
    engine.script(Script(tokens=("a", "b"), hang=True))
    response = await api.post("/api/generate/stream", {"prompt": "x", "max_tokens": 2000})
    assert len(await api.read_then_leave(response, 2)) == 2
    [call] = engine.calls
    assert call.cancelled and call.released
    assert runtime.current().limiter.active == 0


async def test_a_refused_stream_is_a_json_error_not_an_event_stream(api):
    response = await api.post("/api/generate/stream", {"prompt": ""}, accept="text/event-stream")
    api.error(response, 400, "invalid_request", "prompt")
    assert not response.streaming


# --- chat --------------------------------------------------------------------------------------


async def test_chat_answers_the_assistants_turn_from_the_default_chat_model(api, engine):
    engine.script(Script(tokens=(" Hello", "!"), finish_reason="stop"))
    response = await api.post("/api/chat", {"messages": [{"role": "system", "content": "Be brief."}, *HI]})
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "model": CHAT, "message": {"role": "assistant", "content": " Hello!"}, "tokens_generated": 2,
        "prompt_tokens": body["prompt_tokens"], "finish_reason": "eos",
    }
    [call] = engine.calls
    assert call.prompt == (  # the catalog entry's template (ChatML: tests/unit/conftest.py)
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert body["prompt_tokens"] == len(call.prompt)
    assert not call.keep_leading_whitespace
    assert "<|im_end|>" in call.sampling.stop  # the model's end of turn


async def test_chat_stream_carries_the_same_text_and_counts(api, engine):
    engine.script(Script(tokens=("A", " poem")), Script(tokens=("A", " poem")))
    expected = (await api.post("/api/chat", {"messages": HI})).json()
    _, events, _ = await api.stream("/api/chat/stream", {"messages": HI})
    assert "".join(event.data for event in events if event.event == "message") == expected["message"]["content"]
    done = json.loads(events[-1].data)
    assert done == {key: expected[key] for key in ("model", "finish_reason", "tokens_generated", "prompt_tokens")}


async def test_an_entry_without_a_chat_template_uses_its_model_files_own(api, engine):
    await sync_to_async(ModelEntry.objects.create)(
        model_id="local/own-template", display_name="x", source="bundled", location="x",
        capabilities=["chat"], chat_template="", bos_token="", eos_token="",
    )
    assert (await api.post("/api/chat", {"model": "local/own-template", "messages": HI})).status_code == 200
    assert engine.calls[-1].prompt == "<|user|>Hi\n<|assistant|>"  # the fake file's template (fake_worker)
    engine.chat_format = None  # a file without a template
    await sync_to_async(ModelEntry.objects.create)(
        model_id="local/no-template", display_name="x", source="bundled", location="x", capabilities=["chat"],
        chat_template="",
    )
    error = api.error(await api.post("/api/chat", {"model": "local/no-template", "messages": HI}), 400,
                      "invalid_request", "model")
    assert "no chat template" in error["message"]


async def test_a_prepared_file_s_template_is_known_before_any_load(api, engine, tmp_path, monkeypatch):
    """Once a GGUF has been prepared on this machine (by a load, or the admin's check of the file),
    a request is rendered with its template before the model is loaded, and refused without a
    load where it has none: a load of the model would evict another for nothing."""
    cache_dir = tmp_path / "cache"
    monkeypatch.setattr(runtime.current().engine_cache, "cache_dir", cache_dir)
    prepare_gguf(write_tiny_gguf(tmp_path / "plain.gguf"), cache_dir)
    prepare_gguf(write_tiny_gguf(tmp_path / "chat.gguf", chat_template="{{ messages[0].content }}!"), cache_dir)
    for model_id, filename in (("local/plain", "plain.gguf"), ("local/chat", "chat.gguf")):
        await sync_to_async(ModelEntry.objects.create)(
            model_id=model_id, display_name="x", source="gguf_file", location=str(tmp_path), filename=filename,
            capabilities=["chat"], chat_template="",
        )
    error = api.error(await api.post("/api/chat", {"model": "local/plain", "messages": HI}), 400,
                      "invalid_request", "model")
    assert "no chat template, nor does its file" in error["message"]
    assert engine.workers == []  # no load was started
    assert (await api.post("/api/chat", {"model": "local/chat", "messages": HI})).status_code == 200
    assert engine.calls[-1].prompt == "Hi!"  # the file's template, not the loaded fake's


# --- validation and errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, field",
    [
        ({"prompt": "x", "temperature": 2.5}, "temperature"),
        ({"prompt": "x", "temperature": -1}, "temperature"),
        ({"prompt": "x", "top_p": 1.5}, "top_p"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": ""}, "prompt"),
        ({}, "prompt"),
        ({"prompt": "x", "stop": "not a list"}, "stop"),
        ({"prompt": "x", "top_k": 2**64}, "top_k"),
        ({"prompt": "x", "repetition_penalty": 0}, "repetition_penalty"),
        ({"prompt": "a\x00b"}, "prompt"),
    ],
)
async def test_generate_refuses_bad_parameters_with_the_field(api, engine, body, field):
    api.error(await api.post("/api/generate", body), 400, "invalid_request", field)
    assert engine.calls == []


@pytest.mark.parametrize(
    "messages, field",
    [
        ([], "messages"),
        ([{"role": "wizard", "content": "hi"}], "messages[0].role"),
        ([{"content": "hi"}], "messages[0].role"),
        ("hello", "messages"),
    ],
)
async def test_chat_refuses_bad_messages_with_the_field(api, messages, field):
    api.error(await api.post("/api/chat", {"messages": messages}), 400, "invalid_request", field)


async def test_max_tokens_over_the_limit_names_the_limit(api):
    error = api.error(await api.post("/api/generate", {"prompt": "x", "max_tokens": 5000}), 400, field="max_tokens")
    assert "4096" in error["message"]


async def test_a_prompt_longer_than_the_context_gives_both_counts(api, engine):
    engine.context_length = 20
    error = api.error(await api.post("/api/generate", {"prompt": "y" * 30}), 400, "context_length_exceeded", "prompt")
    assert "35" in error["message"] and "20" in error["message"]  # <bos> and 30 characters: 35 tokens
    assert engine.calls == []


@pytest.mark.parametrize(
    "raw", [b'{"prompt": ', b'{"prompt": "x\\ud800"}', b'{"prompt": "x", "temperature": NaN}', b"[" * 100_000]
)
async def test_json_the_service_cannot_take_is_a_parse_error(api, raw):
    api.error(await api.post("/api/generate", raw), 400, "parse_error")


async def test_a_body_that_is_not_json_is_415(api):
    for content_type in ("text/plain", "multipart/form-data; boundary=x"):
        response = await api.post("/api/generate", b"prompt=hi", content_type=content_type)
        error = api.error(response, 415, "unsupported_media_type")
        assert content_type.split(";")[0] in error["message"]


async def test_a_body_over_the_limit_is_413(api, settings):
    response = await api.post("/api/generate", {"prompt": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    api.error(response, 413, "request_too_large")


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat/stream"])
async def test_an_unknown_model_is_404(api, path):
    body = {"prompt": "x"} if path == "/api/generate" else {"messages": HI}
    api.error(await api.post(path, {**body, "model": "nobody/nothing"}), 404, "model_not_found", "model")


async def test_a_disabled_model_is_403_and_unlisted(api):
    await api.disable(BASE)
    api.error(await api.post("/api/generate", {"prompt": "x", "model": BASE}), 403, "model_not_allowed", "model")
    models = (await api.client.get("/api/models")).json()["models"]
    assert BASE not in [model["id"] for model in models]


async def test_unknown_paths_and_methods_answer_json(api):
    for path in ("/api/nothing", "/v1/nothing", "/nothing"):
        api.error(await api.client.get(path), 404, "not_found")
    api.error(await api.client.get("/api/generate"), 405, "method_not_allowed")


async def test_a_model_that_fails_to_load_is_503_with_retry_after(api, engine):
    engine.load_failures[BASE] = "its engine process could not start: boom"
    response = await api.post("/api/generate", {"prompt": "x"})
    error = api.error(response, 503, "model_unavailable")
    assert "boom" in error["message"] and int(response["Retry-After"]) >= 1
    assert engine.calls == []


async def test_an_engine_failure_before_the_answer_is_503(api, engine):
    engine.script(Script(failure=EngineFailed("The engine failed: boom")))
    api.error(await api.post("/api/chat", {"messages": HI}), 503, "engine_error")


async def test_overload_is_429_with_retry_after_and_the_slot_comes_back(busy_api, busy_engine):
    busy_engine.script(Script(tokens=("a",), hang=True))
    running = await busy_api.post("/api/generate/stream", {"prompt": "x"})  # holds the only slot
    refused = await busy_api.post("/api/generate", {"prompt": "x"})
    error = busy_api.error(refused, 429, "overloaded")
    assert "busy" in error["message"] and int(refused["Retry-After"]) >= 1
    await busy_api.read_then_leave(running, 1)
    assert (await busy_api.post("/api/generate", {"prompt": "x"})).status_code == 200


# --- API keys: 401, 403, 429 -------------------------------------------------------------------------


async def test_where_keys_are_required_a_call_without_one_is_401(api, settings):
    settings.LLM_REQUIRE_API_KEY = True
    response = await api.post("/api/generate", {"prompt": "x"})
    api.error(response, 401, "unauthorized")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    _, secret = await sync_to_async(create_api_key)(name="ok")
    assert (await api.post("/api/generate", {"prompt": "x"}, authorization=f"Bearer {secret}")).status_code == 200


async def test_an_unknown_key_is_401_even_where_keys_are_optional(api):
    response = await api.post("/api/generate", {"prompt": "x"}, authorization="Bearer llm-not-a-key")
    api.error(response, 401, "unauthorized")


async def test_a_key_is_limited_to_its_models_and_its_requests_per_minute(api):
    _, secret = await sync_to_async(create_api_key)(name="one", requests_per_minute=1, model_ids=(BASE,))
    key = {"authorization": f"Bearer {secret}"}
    api.error(await api.post("/api/chat", {"model": CHAT, "messages": HI}, **key), 403, "model_not_allowed", "model")
    assert (await api.post("/api/generate", {"prompt": "x"}, **key)).status_code == 200
    refused = await api.post("/api/generate", {"prompt": "x"}, **key)
    api.error(refused, 429, "rate_limited")
    assert 1 <= int(refused["Retry-After"]) <= 60


# --- models, tokenizer, health --------------------------------------------------------------------------


async def test_models_list_describes_each_model_and_its_loaded_context(api, engine):
    def base():
        return next(model for model in listed if model["id"] == BASE)

    listed = (await api.client.get("/api/models")).json()["models"]
    assert base() == {
        "id": BASE, "aliases": ["base"], "name": "Fake base", "description": "A base model.",
        "size": "1M", "capabilities": ["text-generation", "chat"], "context_length": None,
        "defaults": {"temperature": 0.7, "max_tokens": 512, "top_p": None, "top_k": None, "repetition_penalty": None},
        "max_tokens_limit": 4096,
    }
    await api.post("/api/generate", {"prompt": "x"})
    listed = (await api.client.get("/api/models")).json()["models"]
    assert base()["context_length"] == engine.context_length  # as its loaded worker reports it


async def test_tokenize_and_detokenize_with_the_models_tokenizer(api):
    tokenized = await api.post("/api/tokenize", {"text": "Hi!"})
    assert tokenized.json() == {"model": BASE, "tokens": [72, 105, 33], "count": 3}  # the fake's: code points
    detokenized = await api.post("/api/detokenize", {"model": "base", "tokens": [72, 105]})
    assert detokenized.json() == {"model": BASE, "text": "Hi"}  # an alias answers with the id


@pytest.mark.parametrize(
    "path, body, status, field",
    [
        ("/api/tokenize", {}, 400, "text"),
        ("/api/tokenize", {"text": None}, 400, "text"),
        ("/api/tokenize", {"model": "no/such", "text": "x"}, 404, "model"),
        ("/api/detokenize", {"tokens": [-1]}, 400, "tokens[0]"),
        ("/api/detokenize", {"tokens": "1"}, 400, "tokens"),
    ],
)
async def test_the_tokenizer_refuses_bad_input(api, path, body, status, field):
    api.error(await api.post(path, body), status, field=field)


async def test_health_live_and_ready(api):
    live = await api.client.get("/health/live")
    assert (live.status_code, live.json()) == (200, {"status": "alive"})
    ready = await api.client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok", "llm_models_loaded": True, "database": "ok", "loaded_models": [],
        "channel_layer": "in-memory", "errors": {}, "models": {},
    }


async def test_ready_is_503_while_a_worker_does_not_answer(api, engine):
    await api.post("/api/generate", {"prompt": "x"})
    engine.silent_seconds = 10
    ready = await api.client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "error" and ready.json()["models"][BASE]["state"] == "unresponsive"
    assert "has not answered for 10 s" in ready.json()["errors"][BASE]


async def test_ready_is_503_while_a_start_up_model_fails_and_while_draining(api, engine):
    engine.load_failures[BASE] = "boom"
    await api.post("/api/generate", {"prompt": "x"})
    ready = await api.client.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "error" and "boom" in ready.json()["errors"][BASE]
    runtime.current().draining.set()
    assert (await api.client.get("/health/ready")).json()["status"] == "draining"


async def test_a_key_over_its_limit_is_refused_before_its_prompt_reaches_the_engine(api, engine):
    """The engine admits a prompt (and starts its prefill, which mistral.rs cannot interrupt) before
    the key's tokens are counted: a key whose minute is already full must cost the engine nothing."""
    _, secret = await sync_to_async(create_api_key)(name="spent", requests_per_minute=1)
    key = {"authorization": f"Bearer {secret}"}
    assert (await api.post("/api/generate", {"prompt": "x"}, **key)).status_code == 200
    for _ in range(3):
        api.error(await api.post("/api/generate", {"prompt": "x"}, **key), 429, "rate_limited")
    assert len(engine.calls) == 1
