# make serve: set up and run the service with the bundled model (Daphne on LLM_INFERENCE_PORT).
# make test:  set up and run the test suite (tests/unit, tests/e2e, tests/soak), with a coverage
#             report (terminal, and coverage.xml).
# make test-unit: the unit tests alone (tests/unit: no server, browser, engine or other process), in seconds.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: serve test test-unit install prepare test-tools clean

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-dev-nodeps.txt requirements-bundled.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-bundled.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-dev-nodeps.txt
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

# Debian packages the tests use: Chromium (headless browser tests), a Redis server and a
# PostgreSQL server (the channel layer and connection pool tests start their own), and
# Prometheus for its promtool (checks deploy/monitoring's alert rules).
test-tools:
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing="$$missing chromium"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; fi

test: install test-tools
	$(PY) -m pytest --cov --cov-report=term --cov-report=xml

test-unit: install
	$(PY) -m pytest tests/unit

clean:
	rm -rf $(VENV) .pytest_cache .coverage .coverage.* coverage.xml
