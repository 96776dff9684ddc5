"""Django's basics: the project's paths and `.env`, debug mode, apps, middleware, URLs,
templates, the database, static files, REST framework and OpenAPI, channels."""

import importlib.util
from pathlib import Path

import dj_database_url
from dotenv import load_dotenv

from inference_service.env import env_bool, env_number, env_str

BASE_DIR = Path(__file__).resolve().parents[2]

# Before any variable is read (here and in the other parts): the environment wins over `.env`.
load_dotenv(BASE_DIR / ".env", override=False)

DEBUG = env_bool("DJANGO_DEBUG", False)

# --- Apps, middleware, URLs, templates ------------------------------------------------------

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

# --- Database ------------------------------------------------------------------------------

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

# --- Passwords, language, static files -------------------------------------------------------

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
