"""The OpenAPI schema tells the truth: schemathesis fuzzes every operation of /api/schema/.

Requests are generated from the schema that a real Daphne server (with the bundled model)
serves: valid ones, and invalid ones. Every response must pass the checks of tests/support/schema_fuzz.py: no 5xx, a
documented status code, content type and headers, a body that matches the declared schema
(for a stream: each event, and the JSON inside it), valid requests not refused (a 400 for a
request the schema allows is a schema that says too little) and invalid ones not served (one
the schema refuses but the server serves is a schema that says too much), an API key
declared optional where it is, and a stream exactly when one was asked for.

Every operation of the schema is fuzzed; nothing is excluded. What is not an operation is not
in the schema to begin with: /metrics (Prometheus text), /swagger-ui/, the schema itself and
the admin (HTML behind a login).

`max_tokens` stays small: the server's limit is 2 here, which the schema shows as the maximum
(a larger value is a documented 400), so each generation is a few tokens. The checks and the
configuration are shared with the in-process fuzzing (tests/support/schema_fuzz.py).
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jsonschema
import pytest
import schemathesis
from schemathesis.core.failures import FailureGroup, ServerError

from tests.support.schema_fuzz import (
    CHECKS,
    MAX_TOKENS_LIMIT,
    call_and_validate,
    fuzz_config,
    fuzz_settings,
    openapi_to_json_schema,
)
from tests.support.server import start_server, stop_server

# A few generated cases per operation and mode, no boundary phase: what the real engine answers
# keeps to the schema too. The whole fuzzing (20 cases per operation and mode, and every
# parameter's boundaries, most of them refused before any engine) runs in process on the fake
# engine: tests/unit/test_schema_fuzz.py.
MAX_EXAMPLES = 5


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
    config = fuzz_config(MAX_EXAMPLES, coverage_phase=False)
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/api/schema/?format=json", config=config, timeout=30)
    # The schema that was served: the server's own limit, and keys optional.
    max_tokens = schema.raw_schema["components"]["schemas"]["GenerateRequest"]["properties"]["max_tokens"]
    assert max_tokens["maximum"] == MAX_TOKENS_LIMIT
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@fuzz_settings(MAX_EXAMPLES)
def test_every_operation_keeps_to_its_schema(case):
    call_and_validate(case)


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
