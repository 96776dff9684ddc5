"""What the schema fuzzing of tests/unit/test_schema_fuzz.py (in process, on the fake engine) and
tests/e2e/test_schema_fuzz.py (a real server and engine) share: the checks every response must
pass, what the generated requests are made to keep to, and schemathesis' configuration."""

import json
import re

import hypothesis
import jsonschema
import schemathesis
from schemathesis.checks import not_a_server_error
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

from tests.support.sse_client import parse_events

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


def fuzz_config(max_examples: int, *, coverage_phase: bool = True) -> schemathesis.Config:
    """schemathesis' configuration: deterministic, `max_examples` generated cases per operation and
    mode, and (with `coverage_phase`) the boundaries of every parameter."""
    phases = {} if coverage_phase else {"phases": {"coverage": {"enabled": False}}}
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # schemathesis stops reading a stream after 20 events by default; ours are bounded
            # (max_tokens 2, at most 8 choices: under 40 events), and are read to their end.
            "max-stream-events": 100,
            "generation": {"max-examples": max_examples, "deterministic": True},
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
            **phases,
        }
    )


def call_and_validate(case) -> None:
    """Send a generated case and run every check on its response. What the schema cannot say is made
    true of a valid body first; these keep a valid body valid, but could make an invalid one valid (a
    message cut off, logit_bias keys merged): an invalid body goes as generated, and is refused at once."""
    if not (case.meta is not None and case.meta.generation.mode.is_negative):
        bound_prompt(case.body)
        keep_to_what_openapi_cannot_say(case.body)
    case.call_and_validate(checks=CHECKS, timeout=60)


def fuzz_settings(max_examples: int) -> hypothesis.settings:
    """Hypothesis' settings for the fuzzing test: the same cases on every run, however slow each one."""
    return hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
