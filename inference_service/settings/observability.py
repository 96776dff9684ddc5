"""Observability: logging, traces (OpenTelemetry); the metrics (django-prometheus) need no setting."""

from django.core.exceptions import ImproperlyConfigured

from inference_service.env import env_bool, env_str
from inference_service.settings.core import DEBUG

# Traces are exported over OTLP/HTTP when this is set (e.g. http://otel-collector:4318); off otherwise.
OTEL_EXPORTER_OTLP_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_ENDPOINT")
OTEL_SERVICE_NAME = env_str("OTEL_SERVICE_NAME", "llm-inference-service")

# --- Logging -----------------------------------------------------------------------------

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
# "json": one JSON object per line (for log collectors); "text": for people. JSON unless DEBUG.
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json").lower()
if LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, got {LOG_FORMAT!r}")
# Prompts and messages are user data: logged only when this is on.
LLM_LOG_PROMPTS = env_bool("LLM_LOG_PROMPTS", False)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "common.log_context.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
