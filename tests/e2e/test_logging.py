"""Logs of real servers: one JSON object per line by default (text with LOG_FORMAT=text),
each with the request id that the response returns, prompts only when asked for."""

import json
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.server import BASE_MODEL, start_server, stop_server

PROMPT = {"max_tokens": 2, "temperature": 0}


def wait_for_line(log: Path, text: str, timeout: float = 20) -> list[str]:
    """The log's lines once one of them contains `text`."""
    deadline = time.monotonic() + timeout
    while True:
        lines = log.read_text().splitlines()
        if any(text in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def engine_line(line: str) -> bool:
    # The engine (Rust) writes its own lines while it loads a model; they are not Python logging's.
    return "mistralrs" in line


def generate_with_a_secret(server) -> tuple[str, str, httpx.Response]:
    """A generation whose prompt holds a unique secret, under a request id of the caller's."""
    request_id = f"test-{uuid.uuid4()}"
    secret = f"zebra-{uuid.uuid4().hex}"
    response = httpx.post(
        f"{server.url}/api/generate",
        json={"prompt": f"My code is {secret}", **PROMPT},
        headers={"X-Request-ID": request_id},
        timeout=120,
    )
    assert response.status_code == 200
    return request_id, secret, response


def test_json_lines_carry_the_request_id_and_no_prompt(live_server):
    request_id, secret, response = generate_with_a_secret(live_server)
    assert response.headers["x-request-id"] == request_id
    lines = wait_for_line(live_server.log, '"generation finished')

    records = [json.loads(line) for line in lines if line.strip() and not engine_line(line)]
    mine = [record for record in records if record["request_id"] == request_id]
    by_message = {record["message"].partition(":")[0]: record for record in mine}
    assert by_message["POST /api/generate 200"]["status"] == 200
    assert by_message["POST /api/generate 200"]["logger"] == "inference_service.access"
    started, finished = by_message["generation started"], by_message["generation finished"]
    assert started["prompt_tokens"] == finished["prompt_tokens"] == response.json()["prompt_tokens"]
    assert finished["generated_tokens"] == response.json()["tokens_generated"]
    assert finished["endpoint"] == "generate" and finished["model"] == "google/gemma-3-270m"
    assert {"time", "level", "logger", "request_id", "message"} <= set(finished)
    assert "generation prompt" not in by_message
    assert secret not in "\n".join(lines)


def test_a_request_id_is_made_when_none_or_a_bad_one_is_sent(live_server):
    made = httpx.get(f"{live_server.url}/health/live").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    bad = "has spaces and\ta tab" + "x" * 200
    replaced = httpx.get(f"{live_server.url}/health/live", headers={"X-Request-ID": bad}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)
    assert replaced != made


@pytest.fixture(scope="module")
def text_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("text-log-server"), startup_models=(BASE_MODEL,), LOG_FORMAT="text", LLM_LOG_PROMPTS="true")
    yield server
    stop_server(server)


def test_text_logs_for_people_and_prompts_when_asked(text_server):
    request_id, secret, response = generate_with_a_secret(text_server)
    lines = wait_for_line(text_server.log, "generation finished")
    assert not any(line.startswith("{") for line in lines)
    mine = [line for line in lines if f"[{request_id}]" in line]
    started = f"generation started: generate on google/gemma-3-270m, {response.json()['prompt_tokens']} prompt tokens"
    assert any(" INFO generation " in line and started in line for line in mine), mine
    # LLM_LOG_PROMPTS: the prompt as the model saw it (with its BOS token).
    assert any(f"generation prompt: '<bos>My code is {secret}'" in line for line in mine), mine
    assert any("generation finished: 2 tokens (length)" in line for line in mine), mine
    assert any(" INFO inference_service.access " in line and "POST /api/generate 200" in line for line in mine)


def test_websocket_lines_carry_the_connection_id_and_each_request_its_message_id(live_server):
    from websockets.sync.client import connect

    connection_id = f"ws-{uuid.uuid4().hex[:12]}"
    url = live_server.url.replace("http", "ws", 1) + "/ws/generate/"
    with connect(url, open_timeout=30, additional_headers={"X-Request-ID": connection_id}) as socket:
        ends = []
        for message_id in ("first", {"not": "an id"}):
            socket.send(json.dumps({"type": "generate", "id": message_id, "prompt": "Hi", **PROMPT}))
            while (reply := json.loads(socket.recv(timeout=120)))["type"] == "delta":
                pass
            ends.append(reply)
        socket.send("not json")
        ends.append(json.loads(socket.recv(timeout=30)))
    # The ids to look for in the log come back with each request's end.
    assert [reply["request_id"] for reply in ends] == [f"{connection_id}:first", f"{connection_id}:2", connection_id]
    deadline = time.monotonic() + 20
    while True:  # until the connection's last line is written
        lines = live_server.log.read_text().splitlines()
        records = [json.loads(line) for line in lines if line.strip() and not engine_line(line)]
        closed = [r for r in records if r["request_id"] == connection_id and r["message"].startswith("WebSocket closed")]
        if closed or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    ids = {record["request_id"] for record in records if record["request_id"].startswith(connection_id)}
    # The connection's own lines, then each generation's: the client's id, or its number on the connection.
    assert ids == {connection_id, f"{connection_id}:first", f"{connection_id}:2"}, ids
    finished = [r for r in records if r["request_id"].startswith(connection_id) and r["message"].startswith(
        "generation finished")]
    assert {r["request_id"] for r in finished} == {f"{connection_id}:first", f"{connection_id}:2"}
