"""Prometheus metrics of the generation core, served at /metrics beside django-prometheus's.

Request metrics are labelled by `model` (the resolved catalog id; empty when the request
failed before a model was resolved, so that unknown ids sent by clients cannot grow the
label set) and `endpoint` (the API that asked: "generate", "chat_stream", "openai_chat"...).
They are recorded by generation.core.service, so every API gets them without code of its own.
"""

from prometheus_client import Counter, Enum, Gauge, Histogram

# On CPU a small model answers its first token in tens of milliseconds and a long answer
# takes minutes; on a busy server both include the time spent waiting for a slot.
FIRST_TOKEN_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
GENERATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
MODEL_LOAD_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)

REQUEST_LABELS = ("model", "endpoint")

requests_total = Counter(
    "llm_requests_total",
    "Generation requests by outcome: the HTTP status of a refusal or failure, 200 for a finished "
    "generation, 499 when the client went away first.",
    (*REQUEST_LABELS, "status"),
)
prompt_tokens_total = Counter("llm_prompt_tokens_total", "Prompt tokens of started generations.", REQUEST_LABELS)
generated_tokens_total = Counter("llm_generated_tokens_total", "Tokens generated.", REQUEST_LABELS)
# vllm:prefix_cache_hits (in tokens); llm_prompt_tokens_total is vllm:prefix_cache_queries.
prompt_tokens_cached_total = Counter(
    "llm_prompt_tokens_cached_total",
    "Prompt tokens of finished generations that the engine took from its prefix cache instead of prefilling "
    "them (0 unless the model's prefix cache is on).",
    REQUEST_LABELS,
)
time_to_first_token = Histogram(
    "llm_time_to_first_token_seconds",
    "From the request reaching the generation core (queueing included) to the first text.",
    REQUEST_LABELS,
    buckets=FIRST_TOKEN_BUCKETS,
)
generation_duration = Histogram(
    "llm_generation_duration_seconds",
    "From the request reaching the generation core (queueing included) to the last token.",
    REQUEST_LABELS,
    buckets=GENERATION_BUCKETS,
)
# The latency breakdown vLLM's operators know (vllm:request_queue_time_seconds,
# vllm:request_prefill_time_seconds, vllm:request_decode_time_seconds,
# vllm:request_time_per_output_token_seconds), for generations that finished;
# llm_time_to_first_token_seconds and llm_generation_duration_seconds (the end-to-end
# latency) above are the rest. deploy/README.md, "Monitoring", maps each name.
queue_time = Histogram(
    "llm_request_queue_time_seconds",
    "Time a request waited for a concurrency slot (0 when one was free).",
    REQUEST_LABELS,
    buckets=FIRST_TOKEN_BUCKETS,
)
prefill_time = Histogram(
    "llm_request_prefill_time_seconds",
    "From the prompt's submission to the engine (the model loaded, the prompt counted) to the first text: "
    "the prompt's prefill, and on CPU the wait for other prompts' prefills before it.",
    REQUEST_LABELS,
    buckets=FIRST_TOKEN_BUCKETS,
)
decode_time = Histogram(
    "llm_request_decode_time_seconds",
    "From the first text to the last token.",
    REQUEST_LABELS,
    buckets=GENERATION_BUCKETS,
)
time_per_output_token = Histogram(
    "llm_time_per_output_token_seconds",
    "Mean time per generated token after the first, one observation per generation of two tokens or more.",
    REQUEST_LABELS,
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5),
)
requests_in_flight = Gauge("llm_requests_in_flight", "Generations holding a concurrency slot.")
requests_queued = Gauge("llm_requests_queued", "Requests waiting for a concurrency slot.")
# Per model. The slot limit is per process, not per model: a model's waiting requests wait for any slot.
requests_running = Gauge(
    "llm_num_requests_running",
    "Generations submitted to the model's engine and not yet ended (vllm:num_requests_running).",
    ("model",),
)
requests_waiting = Gauge(
    "llm_num_requests_waiting",
    "Requests for the model waiting for a concurrency slot (vllm:num_requests_waiting).",
    ("model",),
)
models_loaded = Gauge("llm_models_loaded", "Models loaded in this process.")
model_load_duration = Histogram(
    "llm_model_load_seconds", "Time to load a model into the engine.", ("model",), buckets=MODEL_LOAD_BUCKETS
)
model_load_failures_total = Counter("llm_model_load_failures_total", "Model loads that failed.", ("model",))
model_state = Enum(
    "llm_model_state",
    "Where each model stands in this process: its engine worker loading, loaded, failed to load, "
    "stopped (unloaded), or crashed (died while loaded; the next request starts a new one).",
    ("model",),
    states=["loading", "loaded", "failed", "stopped", "crashed"],
)
engine_worker_crashes_total = Counter(
    "llm_engine_worker_crashes_total", "Engine worker processes that died while their model was loaded.", ("model",)
)
engine_worker_hangs_total = Counter(
    "llm_engine_worker_hangs_total",
    "Engine worker processes killed because they hung (no heartbeat, or no answer for longer than their work "
    "can take); each is counted as a crash too.",
    ("model",),
)

# EngineCache events, and the model state each one leads to.
_STATES = {"loading": "loading", "loaded": "loaded", "load_failed": "failed", "stopped": "stopped", "crashed": "crashed"}


def record_model_event(event: str, model_id: str, seconds: float) -> None:
    """An EngineCache listener: each model's state, load times of loaded models, failures, crashes and hangs."""
    if event == "hung":  # its "crashed" follows
        engine_worker_hangs_total.labels(model=model_id).inc()
        return
    model_state.labels(model=model_id).state(_STATES[event])
    if event == "loaded":
        model_load_duration.labels(model=model_id).observe(seconds)
    elif event == "load_failed":
        model_load_failures_total.labels(model=model_id).inc()
    elif event == "crashed":
        engine_worker_crashes_total.labels(model=model_id).inc()


def observe_engine_cache(cache) -> None:
    cache.listeners.append(record_model_event)
    models_loaded.set_function(lambda: len(cache.loaded_model_ids()))


def observe_limiter(limiter) -> None:
    requests_in_flight.set_function(lambda: limiter.active)
    requests_queued.set_function(lambda: limiter.queued)
