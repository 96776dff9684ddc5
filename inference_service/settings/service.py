"""The inference service: its server (port, limits, timeouts), models and their defaults, the
generation queue, the engine's worker processes, and where model files are kept."""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from catalog.engine_settings import memory_goal
from inference_service.env import env_bool, env_list, env_number, env_str

# --- The server ----------------------------------------------------------------------------

LLM_INFERENCE_PORT = env_number("LLM_INFERENCE_PORT", 8091, minimum=1, maximum=65535)
LLM_BIND_ADDRESS = env_str("LLM_BIND_ADDRESS", "127.0.0.1")
# Slow clients: a request's headers must arrive within LLM_HEADER_TIMEOUT_SECONDS (from the
# connection's start, or from the first byte of a later request on it), its body within
# LLM_BODY_TIMEOUT_SECONDS after them; else 408, and the connection is closed
# (inference_service.http_protocol).
LLM_HEADER_TIMEOUT_SECONDS = env_number("LLM_HEADER_TIMEOUT_SECONDS", 30.0, kind=float, minimum=0.1)
LLM_BODY_TIMEOUT_SECONDS = env_number("LLM_BODY_TIMEOUT_SECONDS", 120.0, kind=float, minimum=0.1)
# Open connections per server process (WebSockets and idle keep-alive ones included); past
# it, a few more are accepted for health probes only, the rest are closed at once.
LLM_MAX_CONNECTIONS = env_number("LLM_MAX_CONNECTIONS", 500, minimum=1)
# Request bodies above this size are answered with 413 (Django's setting, under the service's name).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_number("LLM_MAX_REQUEST_BYTES", 1024 * 1024, minimum=1024)

# --- Models and generation -----------------------------------------------------------------

# The model used when a request names none, unless the admin picks another.
LLM_DEFAULT_MODEL = env_str("LLM_DEFAULT_MODEL", "google/gemma-3-270m")
# The model of a chat request that names none, unless the admin picks another. Empty: the
# default model. (The migrations make the bundled SmolLM2 Instruct the admin's chat default.)
LLM_DEFAULT_CHAT_MODEL = env_str("LLM_DEFAULT_CHAT_MODEL")
# A ceiling on the catalog: when set, only these ids can be served, whatever the admin says.
LLM_ALLOWED_MODELS = env_list("LLM_ALLOWED_MODELS")
LLM_DEFAULT_TEMPERATURE = env_number("LLM_DEFAULT_TEMPERATURE", 0.7, kind=float, minimum=0, maximum=2)
LLM_MAX_TOKENS_LIMIT = env_number("LLM_MAX_TOKENS_LIMIT", 4096, minimum=1)
LLM_DEFAULT_MAX_TOKENS = env_number("LLM_DEFAULT_MAX_TOKENS", 512, minimum=1, maximum=LLM_MAX_TOKENS_LIMIT)
# The longest text /api/tokenize takes, in characters (longer: a 400 naming `text`); the
# engine's work for a text grows with its length. /api/detokenize takes up to 100,000 ids.
LLM_TOKENIZE_MAX_CHARS = env_number("LLM_TOKENIZE_MAX_CHARS", 100_000, minimum=1)
# Generations running at once in this process; more wait in a bounded queue.
LLM_MAX_CONCURRENT_REQUESTS = env_number("LLM_MAX_CONCURRENT_REQUESTS", 4, minimum=1)
LLM_MAX_QUEUED_REQUESTS = env_number("LLM_MAX_QUEUED_REQUESTS", 16, minimum=0)
LLM_QUEUE_TIMEOUT_SECONDS = env_number("LLM_QUEUE_TIMEOUT_SECONDS", 30.0, kind=float, minimum=0)

# --- The engine's worker processes and the model files -----------------------------------------

# Engines kept loaded at once; the least recently used one is unloaded past this.
LLM_MAX_LOADED_MODELS = env_number("LLM_MAX_LOADED_MODELS", 2, minimum=1)
# Each loaded model runs in a worker process. An unloaded model's worker finishes the
# generations under way, then exits; it is killed if it has not after this many seconds.
LLM_ENGINE_STOP_TIMEOUT_SECONDS = env_number("LLM_ENGINE_STOP_TIMEOUT_SECONDS", 30.0, kind=float, minimum=0)
# How far below the web process the workers run (nice): the web process gets the CPU first.
LLM_ENGINE_WORKER_NICE = env_number("LLM_ENGINE_WORKER_NICE", 10, minimum=0, maximum=19)
# A worker whose resident memory passed this many MB after a generation is replaced, its
# replacement loaded while it serves (0: never). The bound of the engine's prefix cache, which
# the bundled models use: a fresh worker holds about 1.2 GB (Gemma 3 270M) or 0.45 GB (SmolLM2).
LLM_ENGINE_WORKER_MAX_RSS_MB = env_number("LLM_ENGINE_WORKER_MAX_RSS_MB", 2048, minimum=0)
# The KV-cache memory of a catalog entry that sets none (GPU builds of the engine: its paged
# attention's memory_goal). Empty: the engine sizes it itself.
LLM_ENGINE_KV_CACHE_MEMORY = env_str("LLM_ENGINE_KV_CACHE_MEMORY")
try:
    memory_goal(LLM_ENGINE_KV_CACHE_MEMORY)
except ValueError as exc:
    raise ImproperlyConfigured(f"LLM_ENGINE_KV_CACHE_MEMORY: {exc}") from None
# A worker that hangs is killed (generation.engine.watchdog): silent (no heartbeat), or idle
# with requests under way (no answer, no CPU), for LLM_ENGINE_HANG_SECONDS; or busy with no
# answer for LLM_ENGINE_STALL_SECONDS plus its longest prompt's prefill at 10 tokens/s.
LLM_ENGINE_HANG_SECONDS = env_number("LLM_ENGINE_HANG_SECONDS", 15.0, kind=float, minimum=3)
LLM_ENGINE_STALL_SECONDS = env_number("LLM_ENGINE_STALL_SECONDS", 300.0, kind=float, minimum=3)
# On SIGTERM, generations in flight may run on this long before they are ended with an
# error event; keep Kubernetes' terminationGracePeriodSeconds a few seconds longer.
LLM_SHUTDOWN_GRACE_SECONDS = env_number("LLM_SHUTDOWN_GRACE_SECONDS", 25.0, kind=float, minimum=0)
# Each server process writes its models' load state (and its heartbeat) to the database
# this often, and picks up the admin's load/unload/reload commands; a process silent for
# three intervals is shown as gone.
LLM_HEARTBEAT_SECONDS = env_number("LLM_HEARTBEAT_SECONDS", 5.0, kind=float, minimum=0.1)
# A comment line is sent on an idle SSE stream this often, so proxies keep it open.
LLM_SSE_KEEPALIVE_SECONDS = env_number("LLM_SSE_KEEPALIVE_SECONDS", 15.0, kind=float, minimum=0.01)
# Responses of POST /v1/responses (with `store`) are kept this many days, then pruned at the next write.
LLM_RESPONSES_RETENTION_DAYS = env_number("LLM_RESPONSES_RETENTION_DAYS", 30, minimum=1)

# Where assembled model files and generated tokenizers are kept.
HF_HOME = env_str("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
LLM_MODEL_CACHE_DIR = Path(env_str("LLM_MODEL_CACHE_DIR") or Path(HF_HOME) / "llm-inference-service")
# Local weights need no hub; "false" lets the engine download Hugging Face repositories.
HF_HUB_OFFLINE = env_bool("HF_HUB_OFFLINE", True)
# The one write to the environment, and on purpose: huggingface_hub (in this process, for the
# admin's model checks and downloads) and the engine in the workers (which inherit these through
# generation.engine.process's WORKER_ENVIRONMENT) read them from the environment only, and
# HF_HUB_OFFLINE's default here (on) is not theirs (off).
os.environ["HF_HOME"] = HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1" if HF_HUB_OFFLINE else "0"

# --- Usage --------------------------------------------------------------------------------

# Usage (per key or none, model and day) is kept this many days, then deleted; 0: kept forever.
LLM_USAGE_RETENTION_DAYS = env_number("LLM_USAGE_RETENTION_DAYS", 400, minimum=0)
