"""`manage.py check --deploy` in production mode: DEBUG off, a real secret key, and the
environment an operator sets for a service reached over HTTPS."""

import secrets
import subprocess
import sys

from tests.support.server import ROOT, server_environment


def check_deploy(tmp_path, **env) -> subprocess.CompletedProcess:
    production = {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "llm.example.com",
    }
    environment = server_environment(tmp_path, **{**production, **env})
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=environment, capture_output=True, text=True,
    )


def test_check_deploy_passes_in_production_mode(tmp_path):
    result = check_deploy(tmp_path, DJANGO_HTTPS="true")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_names_what_plain_http_lacks(tmp_path):
    """Without DJANGO_HTTPS (plain HTTP, as in development) the check says what is missing."""
    result = check_deploy(tmp_path)
    assert result.returncode != 0
    for warning in ["security.W004", "security.W008", "security.W012", "security.W016"]:  # HSTS, redirect, cookies
        assert warning in result.stderr


def test_a_placeholder_secret_key_is_refused_outside_debug(tmp_path):
    for placeholder in ["change-me-to-a-long-random-string", "django-insecure-abc", "CHANGEME"]:
        result = check_deploy(tmp_path, DJANGO_SECRET_KEY=placeholder)
        assert result.returncode != 0
        assert "DJANGO_SECRET_KEY is a placeholder" in result.stderr
    # In development (debug) it starts: check --deploy then only warns, of debug among others.
    development = check_deploy(tmp_path, DJANGO_SECRET_KEY="change-me", DJANGO_DEBUG="true")
    assert "placeholder" not in development.stderr and "System check identified" in development.stderr
