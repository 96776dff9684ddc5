"""/metrics scraped from a real server after real generations: the counters move by exactly
what the responses report."""

import json
import re
import threading
import time

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.promql import promql_metric_names
from tests.support.server import ROOT, SMALL_MODEL
from tests.support.sse_client import stream_events

MODEL = "google/gemma-3-270m"
GREEDY = {"temperature": 0}


def scrape(client: httpx.Client) -> dict:
    """{(sample name, frozenset of labels): value} of one scrape."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: dict, after: dict, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture(scope="module")
def client(live_server):
    with httpx.Client(base_url=live_server.url, timeout=120) as client:
        yield client


def test_generation_counters_move_by_what_the_responses_report(client):
    before = scrape(client)
    generated = client.post("/api/generate", json={"prompt": "The capital of France is", "max_tokens": 4, **GREEDY})
    chat = client.post("/api/chat", json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
                                          "max_tokens": 3})
    _, events, _ = stream_events(
        client, "/api/generate/stream", {"prompt": "1, 2, 3", "max_tokens": 3, **GREEDY}, time.monotonic
    )
    streamed = json.loads(events[-1].data)
    after = scrape(client)
    assert generated.status_code == chat.status_code == 200

    for endpoint, body in [("generate", generated.json()), ("chat", chat.json()), ("generate_stream", streamed)]:
        labels = {"model": MODEL, "endpoint": endpoint}
        assert delta(before, after, "llm_requests_total", **labels, status="200") == 1
        assert delta(before, after, "llm_prompt_tokens_total", **labels) == body["prompt_tokens"]
        assert delta(before, after, "llm_generated_tokens_total", **labels) == body["tokens_generated"]
        assert delta(before, after, "llm_time_to_first_token_seconds_count", **labels) == 1
        assert delta(before, after, "llm_generation_duration_seconds_count", **labels) == 1
        assert delta(before, after, "llm_generation_duration_seconds_sum", **labels) > 0
        # The latency breakdown of vLLM's metrics, per model: slot wait, prefill, decode, per token.
        for histogram in ["llm_request_queue_time_seconds", "llm_request_prefill_time_seconds",
                          "llm_request_decode_time_seconds"]:
            assert delta(before, after, f"{histogram}_count", **labels) == 1, (endpoint, histogram)
        assert delta(before, after, "llm_request_prefill_time_seconds_sum", **labels) > 0
        assert delta(before, after, "llm_request_prefill_time_seconds_sum", **labels) <= \
            delta(before, after, "llm_time_to_first_token_seconds_sum", **labels)
        per_token = delta(before, after, "llm_time_per_output_token_seconds_count", **labels)
        assert per_token == (1 if body["tokens_generated"] > 1 else 0), endpoint
    # django-prometheus's own request metrics, by view (the URL name) and status.
    assert (
        delta(before, after, "django_http_responses_total_by_status_view_method_total",
              status="200", view="generate", method="POST")
        == 1
    )


def test_the_openai_api_is_counted_under_its_own_endpoint(client):
    before = scrape(client)
    body = client.post("/v1/completions", json={"model": MODEL, "prompt": "Hello", "max_tokens": 2}).json()
    after = scrape(client)
    labels = {"model": MODEL, "endpoint": "openai_completions"}
    assert delta(before, after, "llm_requests_total", **labels, status="200") == 1
    assert delta(before, after, "llm_prompt_tokens_total", **labels) == body["usage"]["prompt_tokens"]
    assert delta(before, after, "llm_generated_tokens_total", **labels) == body["usage"]["completion_tokens"]


def test_refusals_are_counted_by_status_without_an_unknown_model_label(client):
    before = scrape(client)
    assert client.post("/api/generate", json={"prompt": "x", "model": "no/such-model"}).status_code == 404
    # Refused by the request's schema, before any model is resolved.
    too_many = client.post("/api/generate", json={"prompt": "x", "max_tokens": 10**6}).status_code
    # Refused by the core, once the model is known: longer than Gemma's context of 32,768 tokens.
    too_long = client.post("/api/generate", json={"prompt": " x" * 40_000, "max_tokens": 1})
    after = scrape(client)
    assert too_many == 400
    assert too_long.status_code == 400 and "context" in too_long.json()["error"]["message"], too_long.text
    # A model id that does not exist never becomes a label value.
    assert delta(before, after, "llm_requests_total", model="", endpoint="generate", status="404") == 1
    assert delta(before, after, "llm_requests_total", model="", endpoint="generate", status="400") == 1
    assert delta(before, after, "llm_requests_total", model=MODEL, endpoint="generate", status="400") == 1
    assert not any(("no/such-model" in str(labels)) for _, labels in after)


def test_requests_refused_before_the_core_are_counted_too(client, live_server):
    """Credentials, a body that does not parse, a field out of range: each request counted once,
    under its endpoint, on HTTP and WebSocket alike."""
    from websockets.sync.client import connect

    before = scrape(client)
    assert client.post("/api/generate", json={"prompt": "x", "temperature": "hot"}).status_code == 400
    assert client.post("/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}
                       ).status_code == 400
    unknown_key = {"Authorization": "Bearer llm-no-such-key-0000000000000000"}
    assert client.post("/api/chat", json={"messages": []}, headers=unknown_key).status_code == 401
    with connect(live_server.url.replace("http", "ws", 1) + "/ws/generate/", open_timeout=30) as socket:
        socket.send(json.dumps({"type": "generate", "prompt": ""}))
        assert json.loads(socket.recv(timeout=30))["type"] == "error"
        socket.send(json.dumps({"type": "dance"}))
        assert json.loads(socket.recv(timeout=30))["type"] == "error"
    after = scrape(client)
    for endpoint, status in [("generate", "400"), ("openai_chat", "400"), ("chat", "401"), ("ws_generate", "400"),
                             ("ws", "400")]:
        assert delta(before, after, "llm_requests_total", model="", endpoint=endpoint, status=status) == 1, endpoint


def test_in_flight_and_queued_gauges_and_a_cancelled_stream(client, live_server):
    """live_server runs one generation at a time with one waiting place."""
    before = scrape(client)
    endless = {"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "max_tokens": 500, **GREEDY}
    with httpx.Client(base_url=live_server.url, timeout=120) as streaming:
        with streaming.stream("POST", "/api/generate/stream", json=endless) as response:
            lines = response.iter_lines()  # kept: closing it would close the stream
            next(line for line in lines if line.startswith("data:"))  # the generation runs
            assert value(scrape(client), "llm_requests_in_flight") == 1
            assert value(scrape(client), "llm_num_requests_running", model=MODEL) == 1
            waiting = threading.Thread(
                target=lambda: client.post("/api/generate", json={"prompt": "Hello", "max_tokens": 2}), daemon=True
            )
            waiting.start()
            deadline = time.monotonic() + 30
            while value(scrape(client), "llm_requests_queued") != 1:
                assert time.monotonic() < deadline, "the second request never queued"
                time.sleep(0.05)
            assert value(scrape(client), "llm_num_requests_waiting", model=MODEL) == 1
        # Leaving the block closed the stream: the client went away mid-generation.
        waiting.join(timeout=60)
    after = scrape(client)
    assert value(after, "llm_requests_in_flight") == 0
    assert value(after, "llm_requests_queued") == 0
    assert value(after, "llm_num_requests_running", model=MODEL) == 0
    assert value(after, "llm_num_requests_waiting", model=MODEL) == 0
    # The second request waited for the first one's slot, and its wait was recorded.
    queued = delta(before, after, "llm_request_queue_time_seconds_sum", model=MODEL, endpoint="generate")
    assert queued > 0.05
    labels = {"model": MODEL, "endpoint": "generate_stream"}
    assert delta(before, after, "llm_requests_total", **labels, status="499") == 1
    assert delta(before, after, "llm_requests_total", model=MODEL, endpoint="generate", status="200") == 1


# The model reloaded by a change of its engine settings: SmolLM2, whose load takes 1.5 s (Gemma's 8).
RELOADED = SMALL_MODEL


def set_engine_seed(live_server, seed) -> None:
    live_server.change_catalog(
        f"from catalog.models import ModelEntry; entry = ModelEntry.objects.get(model_id={RELOADED!r}); "
        f"entry.seed = {seed!r}; entry.save()",
    )


def models_in_state(samples: dict, state: str) -> set[str]:
    return {dict(labels)["model"] for (name, labels), sample in samples.items()
            if name == "llm_model_state" and ("llm_model_state", state) in labels and sample == 1}


def test_loaded_models_and_their_load_time(client, live_server):
    before = scrape(client)
    # Both bundled models, and any other an earlier test loaded.
    assert {MODEL, RELOADED} <= models_in_state(before, "loaded")
    assert value(before, "llm_models_loaded") == len(models_in_state(before, "loaded"))
    # Loaded at start-up, and again after other tests' catalog changes.
    assert value(before, "llm_model_load_seconds_count", model=RELOADED) >= 1
    set_engine_seed(live_server, 1234)  # an engine setting: the next request reloads the model
    try:
        generation = {"prompt": "Hello", "max_tokens": 2, "model": RELOADED}
        assert client.post("/api/generate", json=generation).status_code == 200
    finally:
        set_engine_seed(live_server, None)
    after = scrape(client)
    assert value(after, "llm_models_loaded") == value(before, "llm_models_loaded")  # reloaded: still one
    assert delta(before, after, "llm_model_load_seconds_count", model=RELOADED) == 1
    assert delta(before, after, "llm_model_load_seconds_sum", model=RELOADED) > 0.3  # a load takes a second or more


def test_a_failed_model_load_is_counted(tmp_path):
    """A real load of a missing file, through the same listener the service registers."""
    from prometheus_client import REGISTRY

    from common.errors import ModelUnavailable
    from generation.core import metrics
    from catalog.engine_settings import EngineConfig
    from generation.engine.cache import EngineCache

    cache = EngineCache(cache_dir=tmp_path, max_loaded=1)
    metrics.observe_engine_cache(cache)
    labels = {"model": "test/missing"}
    failures = REGISTRY.get_sample_value("llm_model_load_failures_total", labels) or 0
    with pytest.raises(ModelUnavailable):
        cache.load(EngineConfig(model_id="test/missing", source="gguf_file", location=str(tmp_path), filename="x.gguf"))
    assert REGISTRY.get_sample_value("llm_model_load_failures_total", labels) == failures + 1


# --- deploy/monitoring: the dashboard and the alerts read only what /metrics serves -------------

MONITORING = ROOT / "deploy" / "monitoring"


def monitoring_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard panel, dashboard variable and alert."""
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    queries = [(f"panel {panel['title']!r}", target["expr"])
               for panel in dashboard["panels"] for target in panel["targets"]]
    queries += [(f"variable {variable['name']}", variable["query"]["query"])
                for variable in dashboard["templating"]["list"] if variable["type"] == "query"]
    rules = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    queries += [(f"alert {rule['alert']}", rule["expr"])
                for group in rules["spec"]["groups"] for rule in group["rules"]]
    return queries


def exported_names(text: str) -> set[str]:
    """The sample names /metrics serves, with those of families that have no sample yet (a
    labelled counter before its first increment): from their # TYPE lines."""
    names = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        suffixes = {"histogram": ["_bucket", "_count", "_sum"], "summary": ["", "_count", "_sum"]}.get(kind, [""])
        names |= {name + suffix for suffix in suffixes}
    return names


def test_the_dashboard_and_the_alerts_name_only_metrics_the_server_exports(client):
    assert client.post("/api/generate", json={"prompt": "Hello", "max_tokens": 3, **GREEDY}).status_code == 200
    exported = exported_names(client.get("/metrics").text)
    queries = monitoring_queries()
    assert len(queries) >= 20
    used = set()
    for where, expr in queries:
        names = promql_metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        assert names <= exported, f"{where}: {sorted(names - exported)} not in /metrics"
        used |= names
    # The metrics operators of vLLM look for first are on the dashboard.
    for name in ["llm_time_to_first_token_seconds_bucket", "llm_time_per_output_token_seconds_bucket",
                 "llm_generation_duration_seconds_bucket", "llm_request_queue_time_seconds_bucket",
                 "llm_request_prefill_time_seconds_bucket", "llm_prompt_tokens_total", "llm_generated_tokens_total",
                 "llm_num_requests_running", "llm_num_requests_waiting"]:
        assert name in used, name
