"""Django settings for the inference service.

Every setting that an operator may change is read here, once, from the environment
(and from a `.env` file in the project root when one exists). `.env.example` documents
each of them. The rest of the code reads `django.conf.settings`, never `os.environ`.
"""

import importlib.util
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent

load_dotenv(BASE_DIR / ".env", override=False)


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    value = env_str(name)
    if not value:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def env_number(name: str, default, kind=int, minimum=None, maximum=None):
    value = env_str(name)
    if not value:
        return default
    try:
        number = kind(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a {kind.__name__}, got {value!r}") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {number}")
    return number


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


# --- Django core -------------------------------------------------------------------

DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it in the environment or in .env "
            "(`make serve` writes one), or set DJANGO_DEBUG=true for local development."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"
# Keys copied from examples instead of generated: anyone who read the example can sign sessions.
PLACEHOLDER_SECRET_KEY_PREFIXES = ("change-me", "changeme", "django-insecure-", "insecure-development-key", "your-")
if not DEBUG and SECRET_KEY.lower().startswith(PLACEHOLDER_SECRET_KEY_PREFIXES):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is a placeholder from an example. Generate one, e.g. "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "corsheaders",
    "django_prometheus",
    "axes",
    "csp",
    "catalog",
    "access",
    "generation",
    # The admin as a model workbench (model checks and load state, the playground).
    "workbench",
    # The project package: `manage.py serve`, its templates.
    "inference_service",
]
# `manage.py bench`, for development: the image leaves the benchmark out.
if importlib.util.find_spec("benchmark") is not None:
    INSTALLED_APPS.append("benchmark")

MIDDLEWARE = [
    # The server runs Django's, django-prometheus's and django-csp's middleware in their event-loop forms
    # (inference_service.django_middleware, swapped in by asgi.py); named here as Django
    # names them, which its `check --deploy` looks for.
    # First and (but for django-axes) last: the request metrics of django-prometheus span the whole stack.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "inference_service.request_id.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    "inference_service.error_middleware.JSONErrorMiddleware",
    # Before CommonMiddleware, so that preflight requests are answered here.
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes asks: turns a login refused for a lockout into its 429 page.
    # Natively async; it goes to a thread only to build that page.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First: refuses any login of a locked-out username and address before a password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "inference_service.urls"
ASGI_APPLICATION = "inference_service.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Before the apps' templates: drf-spectacular's Swagger UI page with CSP nonces.
        "DIRS": [BASE_DIR / "inference_service" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_number("DATABASE_CONN_MAX_AGE", 0, minimum=0),
    )
}
# SQLite: every transaction takes the write lock when it begins (BEGIN IMMEDIATE). In the
# default (deferred) mode a transaction that reads and then writes fails at once with
# "database is locked", without waiting, if another connection wrote in between: django-axes
# (a login's failure count) does exactly that, and the heartbeat thread writes every few
# seconds, so an admin login answered 500 now and then. Waiting writers wait up to `timeout`.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(transaction_mode="IMMEDIATE", timeout=20)
# PostgreSQL: a connection pool (psycopg_pool, through Django). Under ASGI each request runs
# its database work in a thread of its own, so without a pool every request (each reads
# the catalog) opens and closes a connection; persistent connections are no substitute
# under ASGI (Django's deployment docs), and Django refuses them together with a pool.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool("DATABASE_POOL", True):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Django then gives the pool a check of each connection before use: after a database
    # restart, pooled connections are dead, and an idle process's first requests failed on them.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_number("DATABASE_POOL_MIN_SIZE", 2, minimum=0),
        "max_size": env_number("DATABASE_POOL_MAX_SIZE", 20, minimum=1),
        # How long a request waits for a connection: while the database is down, requests
        # and the readiness probe answer 503 after this, instead of psycopg_pool's 30 s.
        "timeout": env_number("DATABASE_POOL_TIMEOUT", 3.0, kind=float, minimum=0.1),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # plotly.js from the plotly package, for the admin's usage charts.
    "access.charts.PlotlyFinder",
]

# Request bodies above this size are answered with 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_number("LLM_MAX_REQUEST_BYTES", 1024 * 1024, minimum=1024)

# --- REST framework and OpenAPI ------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Bearer API keys (access/): required on every API call when LLM_REQUIRE_API_KEY is on.
    "DEFAULT_AUTHENTICATION_CLASSES": ["access.authentication.BearerKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["generation.api.json_input.ClientJSONParser"],
    # SSE clients send `Accept: text/event-stream`: answer in the view's format, not 406.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "generation.api.content_negotiation.FallbackContentNegotiation",
    "EXCEPTION_HANDLER": "generation.api.errors.exception_handler",
}

SERVICE_NAME = "LLM Inference Service"
SERVICE_VERSION = "1.0.0"

SPECTACULAR_SETTINGS = {
    "TITLE": SERVICE_NAME,
    "DESCRIPTION": "Text generation, streaming and chat from local models through mistral.rs.",
    "VERSION": SERVICE_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's JS and CSS come from drf-spectacular-sidecar: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The docs stay readable without a key; "Authorize" in Swagger UI takes one for the calls.
    "SERVE_AUTHENTICATION": [],
    # Enums of one field name with several sets of values (chat's finish reasons add tool_calls).
    "ENUM_NAME_OVERRIDES": {
        "FinishReasonEnum": ["stop", "length"],
        "ChatFinishReasonEnum": ["stop", "length", "tool_calls"],
        "FunctionTypeEnum": ["function"],
        "ResponseItemStatusEnum": ["in_progress", "completed", "incomplete"],
        "ResponseStatusEnum": ["in_progress", "completed", "incomplete", "failed"],
    },
}

# --- Channels --------------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
# channels_redis waits on Redis in blocking reads of 5 s; redis-py's default socket timeout
# is also 5 s, which would break every idle WebSocket after 5 s. The read timeout must exceed it.
REDIS_SOCKET_TIMEOUT_SECONDS = 30
CHANNEL_LAYERS = {
    "default": (
        {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS}]},
        }
        if REDIS_URL
        else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    )
}

# --- The inference service -------------------------------------------------------------

LLM_INFERENCE_PORT = env_number("LLM_INFERENCE_PORT", 8091, minimum=1, maximum=65535)
LLM_BIND_ADDRESS = env_str("LLM_BIND_ADDRESS", "127.0.0.1")
# TLS: both set, Daphne serves HTTPS on LLM_INFERENCE_PORT.
LLM_TLS_CERT_FILE = env_str("LLM_TLS_CERT_FILE")
LLM_TLS_KEY_FILE = env_str("LLM_TLS_KEY_FILE")
if bool(LLM_TLS_CERT_FILE) != bool(LLM_TLS_KEY_FILE):
    raise ImproperlyConfigured("Set both LLM_TLS_CERT_FILE and LLM_TLS_KEY_FILE, or neither.")
# Behind a proxy: trust X-Forwarded-For / X-Forwarded-Proto.
LLM_PROXY_HEADERS = env_bool("LLM_PROXY_HEADERS", False)
# Slow clients: a request's headers must arrive within LLM_HEADER_TIMEOUT_SECONDS (from the
# connection's start, or from the first byte of a later request on it), its body within
# LLM_BODY_TIMEOUT_SECONDS after them; else 408, and the connection is closed
# (inference_service.http_protocol).
LLM_HEADER_TIMEOUT_SECONDS = env_number("LLM_HEADER_TIMEOUT_SECONDS", 30.0, kind=float, minimum=0.1)
LLM_BODY_TIMEOUT_SECONDS = env_number("LLM_BODY_TIMEOUT_SECONDS", 120.0, kind=float, minimum=0.1)
# Open connections per server process (WebSockets and idle keep-alive ones included); past
# it, a few more are accepted for health probes only, the rest are closed at once.
LLM_MAX_CONNECTIONS = env_number("LLM_MAX_CONNECTIONS", 500, minimum=1)
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
# Engines kept loaded at once; the least recently used one is unloaded past this.
LLM_MAX_LOADED_MODELS = env_number("LLM_MAX_LOADED_MODELS", 2, minimum=1)
# Each loaded model runs in a worker process. An unloaded model's worker finishes the
# generations under way, then exits; it is killed if it has not after this many seconds.
LLM_ENGINE_STOP_TIMEOUT_SECONDS = env_number("LLM_ENGINE_STOP_TIMEOUT_SECONDS", 30.0, kind=float, minimum=0)
# How far below the web process the workers run (nice): the web process gets the CPU first.
LLM_ENGINE_WORKER_NICE = env_number("LLM_ENGINE_WORKER_NICE", 10, minimum=0, maximum=19)
# A worker whose resident memory passed this many MB after a generation is replaced (0: never).
LLM_ENGINE_WORKER_MAX_RSS_MB = env_number("LLM_ENGINE_WORKER_MAX_RSS_MB", 0, minimum=0)
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
# The engine (Rust) and huggingface_hub read these from the process environment.
os.environ["HF_HOME"] = HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1" if HF_HUB_OFFLINE else "0"

# --- API keys ----------------------------------------------------------------------------

# When on, every API call needs `Authorization: Bearer <key>` (keys are made in the admin).
LLM_REQUIRE_API_KEY = env_bool("LLM_REQUIRE_API_KEY", False)
# Usage (per key or none, model and day) is kept this many days, then deleted; 0: kept forever.
LLM_USAGE_RETENTION_DAYS = env_number("LLM_USAGE_RETENTION_DAYS", 400, minimum=0)

# --- HTTPS, CORS and security headers -------------------------------------------------------

# The service is reached over HTTPS only (Daphne's own TLS, or a TLS proxy with
# LLM_PROXY_HEADERS): redirect plain HTTP, mark cookies secure, send HSTS.
DJANGO_HTTPS = env_bool("DJANGO_HTTPS", False)
SECURE_SSL_REDIRECT = DJANGO_HTTPS
# Probes, scrapes and in-cluster API clients speak plain HTTP to the pod (through the
# Service); outside clients are redirected by the ingress. A redirect cannot protect an
# API key that was already sent in clear, and API clients do not follow it with their body.
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$", r"^api/", r"^v1/"]
SESSION_COOKIE_SECURE = DJANGO_HTTPS
CSRF_COOKIE_SECURE = DJANGO_HTTPS
SECURE_HSTS_SECONDS = env_number("DJANGO_SECURE_HSTS_SECONDS", 31536000 if DJANGO_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
# Consent to browsers' HSTS preload lists; it takes effect only once the domain is submitted to them.
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", DJANGO_HTTPS)
if LLM_PROXY_HEADERS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Origins of the admin's login form behind a proxy that rewrites the host, e.g. https://llm.example.com
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp), on every response. Nothing is loaded from another
# origin (deployments are air-gapped; Swagger UI's and the admin's assets are served here),
# and no inline script or style runs but the two blocks of the Swagger UI page (its start-up
# script and a <style>), which carry the response's nonce (inference_service/templates/);
# the admin has none. The one allowance is Swagger UI's: its stylesheet and bundle draw
# icons and arrows as data: SVG images.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        # The nonce is sent only with a page that uses it.
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Browser origins allowed to call the API, e.g. https://app.example.com (none by default).
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "user-agent", "x-request-id")
CORS_EXPOSE_HEADERS = ("x-request-id", "retry-after")

# --- Admin login: lockout after repeated failures (django-axes) ----------------------------

# Failed logins before a username is locked out, from the address that failed; it stays
# locked for the cool-off (each further failure restarts it), then gets a fresh count.
AXES_FAILURE_LIMIT = env_number("ADMIN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
ADMIN_LOGIN_COOLOFF_MINUTES = env_number("ADMIN_LOGIN_COOLOFF_MINUTES", 15, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=ADMIN_LOGIN_COOLOFF_MINUTES)
# Per username and address together, so that an attacker cannot lock the real admin out
# from another address.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# A successful login clears its username and address's count (a locked-out one cannot succeed).
AXES_RESET_ON_SUCCESS = True


def axes_client_address(request) -> str | None:
    """The client's address as the rest of the service sees it: Daphne sets REMOTE_ADDR from
    X-Forwarded-For when LLM_PROXY_HEADERS is on, and from the socket otherwise (a client
    cannot pick its address then). Named here so that django-axes never reads forwarding
    headers itself (as it would through django-ipware, were that installed)."""
    return request.META.get("REMOTE_ADDR")


AXES_CLIENT_IP_CALLABLE = axes_client_address
AXES_HTTP_RESPONSE_CODE = 429
AXES_COOLOFF_MESSAGE = (
    "Too many failed logins: this username is locked out from your address. "
    f"Try again in {ADMIN_LOGIN_COOLOFF_MINUTES} minutes."
)

# --- Metrics and traces ------------------------------------------------------------------

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
    "filters": {"request_id": {"()": "generation.log_context.RequestIdFilter"}},
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
