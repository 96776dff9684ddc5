"""The OpenAPI schema tells the truth: schemathesis fuzzes every operation of /api/schema/.

Requests are generated from the schema that a real Daphne server (with the bundled model)
serves: valid ones, and invalid ones. Every response must pass the checks below: no 5xx, a
documented status code, content type and headers, a body that matches the declared schema
(for a stream: each event, and the JSON inside it), valid requests not refused (a 400 for a
request the schema allows is a schema that says too little) and invalid ones not served (one
the schema refuses but the server serves is a schema that says too much), an API key
declared optional where it is, and a stream exactly when one was asked for.

Every operation of the schema is fuzzed; nothing is excluded. What is not an operation is not
in the schema to begin with: /metrics (Prometheus text), /swagger-ui/, the schema itself and
the admin (HTML behind a login).

`max_tokens` stays small: the server's limit is 2 here, which the schema shows as the maximum
(a larger value is a documented 400), so each generation is a few tokens and the file runs in
a few minutes on 2 cores.
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import hypothesis
import jsonschema
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup, ServerError
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.server import start_server, stop_server
from tests.support.sse_client import parse_events

MAX_EXAMPLES = 20
SEED = 20261125
MAX_TOKENS_LIMIT = 2
# The prompt's size bounds each request's time as max_tokens does: a prefill of thousands of
# tokens takes tens of seconds on 2 cores, and says no more about the schema than a short one.
MAX_PROMPT_CHARS = 32
MAX_MESSAGES = 3


def bound_prompt(body) -> None:
    """Cut a generated prompt (or chat) down to MAX_PROMPT_CHARS per text and MAX_MESSAGES
    messages (or text parts), in place. What was valid stays valid; schemathesis classifies the
    case again after the change, so one that the cut made valid is checked as valid."""
    if not isinstance(body, dict):
        return
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        body["prompt"] = prompt[:MAX_PROMPT_CHARS]
    elif isinstance(prompt, list):
        body["prompt"] = [text[:MAX_PROMPT_CHARS] if isinstance(text, str) else text for text in prompt[:MAX_MESSAGES]]
    for name in ("input", "instructions"):  # the Responses API's
        if isinstance(body.get(name), str):
            body[name] = body[name][:MAX_PROMPT_CHARS]
    messages = body.get("messages", body.get("input"))
    if not isinstance(messages, list):
        return
    del messages[MAX_MESSAGES:]
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            message["content"] = content[:MAX_PROMPT_CHARS]
        elif isinstance(content, list):
            del content[MAX_MESSAGES:]
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    part["text"] = part["text"][:MAX_PROMPT_CHARS]


# A JSON schema the engine cannot compile is a 400 (tests/e2e/test_openai_api.py); what the
# fuzzer makes of `response_format.json_schema.schema` (any object) mostly is one.
FUZZ_JSON_SCHEMA = {"type": "object"}


# The smaller vocabulary of the two bundled models (SmolLM2's; Gemma 3 has 262,144 tokens).
SMALLEST_VOCABULARY = 49152


def keep_to_what_openapi_cannot_say(body) -> None:
    """What the schema cannot express, made true of a generated body in place: the token ids of
    `logit_bias` are the model's (which the schema cannot know: a larger one is a 400), and a
    JSON schema for structured output is one the engine compiles."""
    if not isinstance(body, dict):
        return
    bias = body.get("logit_bias")
    if isinstance(bias, dict):
        body["logit_bias"] = {
            str(int(key[-9:]) % SMALLEST_VOCABULARY) if re.fullmatch("[0-9]+", key) else key: value
            for key, value in bias.items()
        }
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and isinstance(response_format.get("json_schema"), dict):
        if isinstance(response_format["json_schema"].get("schema"), dict):
            response_format["json_schema"]["schema"] = FUZZ_JSON_SCHEMA
    if isinstance(body.get("format"), dict):  # the native API's JSON schema
        body["format"] = FUZZ_JSON_SCHEMA
    keep_tool_choice_to_the_tools(body)


def keep_tool_choice_to_the_tools(body: dict) -> None:
    """Tools' parameters the engine compiles, and a `tool_choice` that needs tools (or names a
    function) only with them (a 400 otherwise, which the schema cannot say)."""
    tools = body.get("tools")
    names = []
    flat = "input" in body  # the Responses API's tools and tool_choice have no `function` object
    for tool in tools if isinstance(tools, list) else ():
        function = (tool if flat else tool.get("function")) if isinstance(tool, dict) else None
        if isinstance(function, dict):
            if isinstance(function.get("parameters"), dict):
                function["parameters"] = FUZZ_JSON_SCHEMA
            names.append(function.get("name"))
    choice = body.get("tool_choice")
    function = (choice if flat else choice.get("function")) if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    # Only a choice the schema allows is dropped: an invalid one stays as generated (an invalid case).
    named = isinstance(name, str) and 0 < len(name) <= 64 and "\x00" not in name and choice.get("type") == "function"
    if (choice == "required" and not names) or (named and name not in names):
        del body["tool_choice"]
    text_format = body.get("text", {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(text_format, dict) and isinstance(text_format.get("schema"), dict):  # the Responses API's
        text_format["schema"] = FUZZ_JSON_SCHEMA


def content_type(response) -> str:
    return (response.headers.get("content-type") or [""])[0].split(";")[0].strip()


def stream_answers_in_the_format_asked(ctx, response, case):
    """A 200 is `text/event-stream` exactly when a stream was asked for (the /stream URLs of the
    native API, `stream: true` on the OpenAI-compatible one), else JSON: the schema cannot say
    which of the two 200s answers a request, so this says it."""
    if response.status_code != 200 or case.method != "POST":
        return
    if case.path.startswith("/v1/"):
        streamed = isinstance(case.body, dict) and case.body.get("stream") is True
    else:
        streamed = case.path.endswith("/stream")
    expected = "text/event-stream" if streamed else "application/json"
    assert content_type(response) == expected, f"Asked for {expected}, got {content_type(response)}"


def openapi_to_json_schema(node):
    """OpenAPI 3.0's `nullable` as JSON Schema."""
    if isinstance(node, list):
        return [openapi_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: openapi_to_json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


def stream_events_carry_their_declared_json(ctx, response, case):
    """Each event of a stream whose `data` the schema declares as JSON (`x-contentSchema`)
    holds JSON of that schema, and the stream ends as its description says: `event: done`
    (native), `data: [DONE]` (OpenAI-compatible) or `response.completed` (the Responses API, or
    `.incomplete`: max_output_tokens). An error event fails the check: it is a
    failure of the server after the stream started, which the 200 status cannot show."""
    if response.status_code != 200 or content_type(response) != "text/event-stream":
        return
    document = case.operation.schema.raw_schema
    event_schema = document["paths"][case.path][case.method.lower()]["responses"]["200"]["content"][
        "text/event-stream"
    ]["schema"]
    if "$ref" in event_schema:
        event_schema = document["components"]["schemas"][event_schema["$ref"].rsplit("/", 1)[1]]
    variants = {
        variant["properties"]["event"]["allOf"][0]["enum"][0]: variant["properties"]["data"]
        for variant in event_schema.get("oneOf", [event_schema])
    }
    components = openapi_to_json_schema(document["components"])
    events, _ = parse_events(re.split(r"\r\n|\r|\n", response.content.decode()), clock=lambda: 0)
    assert events, "An empty stream"
    if case.path == "/v1/responses":  # typed events, the last one the whole response
        ends = ("response.completed", "response.incomplete")
        assert events[-1].event in ends, f"The stream does not end with the response: {events[-1]}"
    elif case.path.startswith("/v1/"):
        assert events[-1].data == "[DONE]", f"The stream does not end with [DONE]: {events[-1]}"
        events = events[:-1]
    else:
        assert events[-1].event == "done", f"The stream does not end with event: done: {events[-1]}"
    for event in events:
        data_schema = variants.get(event.event)
        assert data_schema is not None, f"An event the schema does not declare: {event}"
        if "x-contentSchema" not in data_schema:
            continue
        try:
            payload = json.loads(event.data)
        except ValueError:
            raise AssertionError(f"The data of this event is not JSON: {event}") from None
        validator = jsonschema.Draft7Validator(
            {**openapi_to_json_schema(data_schema["x-contentSchema"]), "components": components}
        )
        error = jsonschema.exceptions.best_match(validator.iter_errors(payload))
        assert error is None, f"The JSON of this event does not match its schema: {error.message}\n{event}"
        assert "error" not in payload, f"The stream failed after it started: {event}"


# Every check that applies to an API that creates no resources (schemathesis' use_after_free,
# ensure_resource_availability and object_level_authorization are about those), both ways: a
# request the schema allows is served, one it refuses is refused (no type is coerced: "0.5" is
# not a number, nor 0 a string). Not unsupported_method: it calls methods outside the schema.
CHECKS = [
    not_a_server_error,
    negative_data_rejection,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    positive_data_acceptance,
    missing_required_header,
    ignored_auth,
    stream_answers_in_the_format_asked,
    stream_events_carry_their_declared_json,
]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    """Short generations, two at a time, so that a sequential fuzz never waits or gets a 429."""
    server = start_server(
        tmp_path_factory.mktemp("fuzz-server"),
        LLM_MAX_TOKENS_LIMIT=str(MAX_TOKENS_LIMIT),
        LLM_DEFAULT_MAX_TOKENS="1",
        LLM_MAX_CONCURRENT_REQUESTS="2",
        LLM_QUEUE_TIMEOUT_SECONDS="30",
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def api_schema(fuzz_server):
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # schemathesis stops reading a stream after 20 events by default; ours are bounded
            # (max_tokens 2, at most 8 choices: under 40 events), and are read to their end.
            "max-stream-events": 100,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            # The failures print the exact request: there are no secrets here (no API key exists).
            "output": {"sanitization": {"enabled": False}},
            # The coverage phase sends every boundary of every parameter (the valid ones and the
            # invalid ones): a few hundred cases per operation, most of them a generation when
            # valid. Its valid cases run on /api/generate and /api/chat, whose parameters (and
            # their serializer) the streams and the OpenAI-compatible API share; on those its
            # invalid cases only, besides their examples and their fuzzing (valid and invalid).
            "operations": [
                {
                    "include-path-regex": "^/v1/|/stream$",
                    "phases": {"coverage": {"generation": {"mode": "negative"}}},
                }
            ],
        }
    )
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/api/schema/?format=json", config=config, timeout=30)
    # The schema that was served: the server's own limit, and keys optional.
    max_tokens = schema.raw_schema["components"]["schemas"]["GenerateRequest"]["properties"]["max_tokens"]
    assert max_tokens["maximum"] == MAX_TOKENS_LIMIT
    return schema


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request):
    """schemathesis 4.32.5 renames the test node per operation (for its reports) through the
    `_nodeid` attribute, which pytest 9.2 no longer has (it keeps `_id`): give it one."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_operation_keeps_to_its_schema(case):
    # These keep a valid body valid, but could make an invalid one valid (a message cut off,
    # logit_bias keys merged): an invalid body goes as generated, and is refused at once.
    if not (case.meta is not None and case.meta.generation.mode.is_negative):
        bound_prompt(case.body)
        keep_to_what_openapi_cannot_say(case.body)
    case.call_and_validate(checks=CHECKS, timeout=60)


def test_the_schema_declares_api_keys_optional_unless_required(api_schema):
    for path, operations in api_schema.raw_schema["paths"].items():
        for operation in operations.values():
            if path.startswith(("/api/", "/v1/")):
                assert operation["security"] == [{"ApiKey": []}, {}], path
            else:
                assert "security" not in operation, path


def schema_allows(api_schema, path: str, body) -> bool:
    """Whether the served schema allows this JSON body for POST `path`."""
    document = api_schema.raw_schema
    body_schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    validator = jsonschema.Draft7Validator(
        {**openapi_to_json_schema(body_schema), "components": openapi_to_json_schema(document["components"])}
    )
    return validator.is_valid(body)


CHAT_MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "path, body, field",
    [
        # Strings where the schema says string: DRF's CharField took 0 as "0".
        ("/api/generate", {"prompt": 0}, "prompt"),
        ("/api/tokenize", {"text": 0}, "text"),
        ("/api/chat", {"messages": [{"role": "user", "content": 0}]}, "messages[0].content"),
        ("/api/generate", {"prompt": "hi", "stop": [0]}, "stop[0]"),
        # Numbers where it says number (or integer, or boolean): DRF took "0.5", "1" and "true".
        ("/api/generate", {"prompt": "hi", "temperature": "0.5"}, "temperature"),
        ("/api/generate", {"prompt": "hi", "top_p": "0.5"}, "top_p"),
        ("/api/generate/stream", {"prompt": "hi", "top_k": "1"}, "top_k"),
        ("/v1/completions", {"prompt": "hi", "min_p": "0.5"}, "min_p"),
        ("/v1/chat/completions", {"messages": CHAT_MESSAGES, "stream": "true"}, "stream"),
        ("/v1/chat/completions", {"messages": CHAT_MESSAGES, "echo": 0}, "echo"),
        # logit_bias keys are token ids: the schema said any key.
        ("/v1/completions", {"prompt": "hi", "logit_bias": {"abc": 1}}, "logit_bias"),
        # The schema's maximum of max_tokens holds where max_completion_tokens overrides it.
        ("/v1/chat/completions", {"messages": CHAT_MESSAGES, "max_completion_tokens": 1, "max_tokens": 3},
         "max_tokens"),
    ],
)
def test_the_schema_and_the_server_refuse_the_same_bodies(fuzz_server, api_schema, path, body, field):
    """Each case was a disagreement: the server coerced a value the schema refuses, or refused a key
    the schema allowed. Now both refuse it."""
    body = {"max_tokens": 1, **body}
    assert not schema_allows(api_schema, path, body)
    response = httpx.post(f"{fuzz_server.url}{path}", json=body, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.get("field", error.get("param")) == field


def test_the_schema_allows_every_seed_the_server_takes(api_schema):
    """A seed may be any 64-bit integer, signed or not; `format: int64` had ended the schema's at 2^63 - 1."""
    components = api_schema.raw_schema["components"]["schemas"]
    seeds = [schema["properties"]["seed"] for schema in components.values() if "seed" in schema.get("properties", {})]
    assert len(seeds) >= 3  # native generate and chat, OpenAI completions and chat
    for seed in seeds:
        assert (seed["minimum"], seed["maximum"], seed.get("format")) == (-(2**63), 2**64 - 1, None)


def test_the_schema_allows_logit_bias_keys_of_digits(api_schema):
    body = {"prompt": "hi", "logit_bias": {"0": -100, "49151": 100}}
    assert schema_allows(api_schema, "/v1/completions", body)


class BrokenServer(BaseHTTPRequestHandler):
    """What the checks must refuse: a 500, and a stream that fails after its 200."""

    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        error = {"error": {"code": "internal_error", "message": "Internal server error."}}
        if self.path == "/api/generate":
            self.answer(500, "application/json", json.dumps(error))
        else:
            self.answer(200, "text/event-stream", f"data: Paris\n\nevent: error\ndata: {json.dumps(error)}\n\n")

    def answer(self, status: int, content_type: str, body: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body.encode())))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def broken_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), BrokenServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_checks_fail_on_a_server_error(api_schema, broken_server):
    """The checks of the fuzz catch a 5xx, and a failure inside a stream, from a server that has them."""
    body = {"prompt": "The capital of France is", "max_tokens": 1}
    case = api_schema["/api/generate"]["POST"].Case(body=body, media_type="application/json")
    with pytest.raises(FailureGroup) as failure:
        case.call_and_validate(base_url=broken_server, checks=CHECKS, timeout=10)
    assert any(isinstance(error, ServerError) for error in failure.value.exceptions)

    case = api_schema["/api/generate/stream"]["POST"].Case(body=body, media_type="application/json")
    with pytest.raises(FailureGroup, match="does not end with event: done"):
        case.call_and_validate(base_url=broken_server, checks=CHECKS, timeout=10)
