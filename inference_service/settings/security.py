"""Security: the secret key, hosts, TLS and proxies, HTTPS and its headers, CSRF, CORS,
Content-Security-Policy, API keys, and the admin login's lockout (django-axes)."""

from datetime import timedelta

from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from inference_service.client_address import axes_client_address
from inference_service.env import env_bool, env_list, env_number, env_str
from inference_service.settings.core import DEBUG

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

# --- TLS and proxies -----------------------------------------------------------------------

# TLS: both set, Daphne serves HTTPS on LLM_INFERENCE_PORT.
LLM_TLS_CERT_FILE = env_str("LLM_TLS_CERT_FILE")
LLM_TLS_KEY_FILE = env_str("LLM_TLS_KEY_FILE")
if bool(LLM_TLS_CERT_FILE) != bool(LLM_TLS_KEY_FILE):
    raise ImproperlyConfigured("Set both LLM_TLS_CERT_FILE and LLM_TLS_KEY_FILE, or neither.")
# Behind a proxy: trust X-Forwarded-For / X-Forwarded-Proto.
LLM_PROXY_HEADERS = env_bool("LLM_PROXY_HEADERS", False)

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

# --- API keys ----------------------------------------------------------------------------

# When on, every API call needs `Authorization: Bearer <key>` (keys are made in the admin).
LLM_REQUIRE_API_KEY = env_bool("LLM_REQUIRE_API_KEY", False)

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
# REMOTE_ADDR, as the rest of the service sees the client (inference_service.client_address).
AXES_CLIENT_IP_CALLABLE = axes_client_address
AXES_HTTP_RESPONSE_CODE = 429
AXES_COOLOFF_MESSAGE = (
    "Too many failed logins: this username is locked out from your address. "
    f"Try again in {ADMIN_LOGIN_COOLOFF_MINUTES} minutes."
)
