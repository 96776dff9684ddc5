# make serve: set up and run the service with the bundled model (Daphne on LLM_INFERENCE_PORT).
# make test:  set up and run the test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: serve test install prepare browser clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# A local .env with a fresh secret key, made once; never committed.
.env:
	@echo "DJANGO_SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > .env
	@echo "Wrote .env with a new DJANGO_SECRET_KEY (see .env.example for the other settings)"

prepare: install .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py prepare_models

serve: prepare
	$(PY) manage.py serve

# The browser tests drive Debian's Chromium (headless).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

test: install browser
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
