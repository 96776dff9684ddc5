"""API keys on a real server with LLM_REQUIRE_API_KEY on: 401 without a valid key, per-key
allowed models and per-minute limits (429 with Retry-After, counted in the database so
that other processes see them), usage recorded and shown in the admin."""

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.admin_forms import admin_session, form_fields
from tests.support.server import ADMIN_PASSWORD, ADMIN_USER, start_server, stop_server

MODEL = "google/gemma-3-270m"
PROMPT = {"prompt": "The capital of France is", "max_tokens": 2, "temperature": 0}  # 6 prompt tokens


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("keys-server")
    server = start_server(
        tmp_path,
        LLM_REQUIRE_API_KEY="true",
        # A second catalog entry, for a key limited to it (never loaded: nothing asks for it).
        setup=(
            "from catalog.models import ModelEntry; ModelEntry.objects.create(model_id='test/other', "
            "display_name='Other', source='gguf_file', location='/nowhere', filename='x.gguf', enabled=False)",
        ),
    )
    server.manage("createsuperuser", "--noinput", "--username", ADMIN_USER, "--email", "admin@example.com")
    yield server
    stop_server(server)


def new_key(server, name: str, *options: str) -> str:
    return server.manage("create_api_key", name, *options).strip()


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]  # `shell` may print a line about its imports first


def key_usage(server, name: str) -> list:
    """[model, requests, prompt tokens, generated tokens] recorded for the key (its one model,
    over the days kept), read from the database."""
    code = (
        "import json; from access.selectors import usage_by_model; from access.models import ApiKey; "
        f"[u] = usage_by_model(api_key=ApiKey.objects.get(name={name!r})); "
        "print(json.dumps([u['model_id'], u['requests'], u['prompt_tokens'], u['generated_tokens']]))"
    )
    return json.loads(last_line(server.manage("shell", "-c", code)))


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def assert_unauthorized(response):
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "unauthorized"


def start_of_a_fresh_minute():
    """Per-minute windows: run limit tests early in a minute, so that it does not end midway."""
    second = time.gmtime().tm_sec
    if second > 30:
        time.sleep(61 - second)


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


def test_every_api_call_needs_a_valid_key(client, server):
    for method, path in [("POST", "/api/generate"), ("POST", "/api/chat/stream"), ("GET", "/api/models")]:
        assert_unauthorized(client.request(method, path, json=PROMPT))
        assert_unauthorized(client.request(method, path, json=PROMPT, headers=bearer("llm-not-a-key")))
        assert_unauthorized(client.request(method, path, json=PROMPT, headers={"Authorization": "Basic abc"}))
    key = new_key(server, "valid")
    assert key.startswith("llm-")
    response = client.post("/api/generate", json=PROMPT, headers=bearer(key))
    assert response.status_code == 200, response.text
    assert client.get("/api/models", headers=bearer(key)).status_code == 200


def test_health_metrics_and_docs_stay_open(client):
    for path in ["/health/live", "/health/ready", "/metrics", "/api/schema/"]:
        assert client.get(path).status_code == 200, path
    schema = client.get("/api/schema/").text
    assert "bearer" in schema  # Swagger UI's "Authorize" takes a key


def test_a_revoked_key_is_refused(client, server):
    key = new_key(server, "to-revoke")
    assert client.post("/api/generate", json=PROMPT, headers=bearer(key)).status_code == 200
    server.manage(
        "shell", "-c",
        "from access.models import ApiKey; from access.services import revoke_api_keys; "
        "revoke_api_keys(queryset=ApiKey.objects.filter(name='to-revoke'))",
    )
    assert_unauthorized(client.post("/api/generate", json=PROMPT, headers=bearer(key)))


def test_a_key_may_be_limited_to_some_models(client, server):
    allowed = new_key(server, "gemma-only", "--model", MODEL)
    other = new_key(server, "other-only", "--model", "test/other")
    assert client.post("/api/generate", json=PROMPT, headers=bearer(allowed)).status_code == 200
    response = client.post("/api/generate", json=PROMPT, headers=bearer(other))
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "model_not_allowed", "message": f"This API key may not use model {MODEL!r}.", "field": "model"
    }


def test_requests_per_minute_are_enforced_across_processes(client, server):
    start_of_a_fresh_minute()
    key = new_key(server, "two-a-minute", "--requests-per-minute", "2")
    assert client.post("/api/generate", json=PROMPT, headers=bearer(key)).status_code == 200
    # Another process (this manage.py) uses the second request of the minute: the server
    # sees it, because the counts live in the database, not in one process's memory.
    server.manage(
        "shell", "-c",
        "from access.models import ApiKey; from access.services import admit_request; "
        "admit_request(api_key=ApiKey.objects.get(name='two-a-minute'), prompt_tokens=1)",
    )
    response = client.post("/api/generate", json=PROMPT, headers=bearer(key))
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert "2 requests per minute" in response.json()["error"]["message"]
    assert 1 <= int(response.headers["retry-after"]) <= 60
    # Other keys are not affected.
    assert client.post("/api/generate", json=PROMPT, headers=bearer(new_key(server, "fresh"))).status_code == 200


def test_tokens_per_minute_count_prompt_and_generated_tokens(client, server):
    start_of_a_fresh_minute()
    key = new_key(server, "fifteen-tokens", "--tokens-per-minute", "15")
    first = client.post("/api/generate", json={**PROMPT, "max_tokens": 8}, headers=bearer(key)).json()
    assert first["prompt_tokens"] + first["tokens_generated"] == 14
    # 14 used: another 6-token prompt would pass 15.
    response = client.post("/api/generate", json=PROMPT, headers=bearer(key))
    assert response.status_code == 429
    assert "15 tokens per minute (14 used)" in response.json()["error"]["message"]
    assert response.headers["retry-after"]


def test_tokens_per_minute_hold_max_tokens_while_a_generation_runs(client, server):
    """Before: only the prompt was counted at admission, so generations running at once were
    all admitted and the key went over its limit by up to concurrency x max_tokens."""
    start_of_a_fresh_minute()
    key = new_key(server, "fifty-tokens", "--tokens-per-minute", "50")
    # A request that could never fit in a minute is a 400, whatever the window holds.
    response = client.post("/api/generate", json={**PROMPT, "max_tokens": 45}, headers=bearer(key))  # 6 + 45
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "max_tokens"
    body = {**PROMPT, "max_tokens": 20}  # 6 + 20: one fits in 50, two do not

    def generate(_):
        return httpx.post(f"{server.url}/api/generate", json=body, headers=bearer(key), timeout=120)

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(generate, range(4)))
    assert sorted(response.status_code for response in responses) == [200, 429, 429, 429]
    [served] = [response.json() for response in responses if response.status_code == 200]
    assert served["prompt_tokens"] + served["tokens_generated"] == 26
    assert key_usage(server, "fifty-tokens")[1:] == [1, 6, 20]


def test_the_tokenizer_counts_against_the_keys_limits(client, server):
    """Before: /api/tokenize and /api/detokenize were outside every per-key limit."""
    start_of_a_fresh_minute()
    key = new_key(server, "tokenizer-two-a-minute", "--requests-per-minute", "2")
    calls = [("/api/tokenize", {"text": "Hello"}), ("/api/detokenize", {"tokens": [9259]})]
    for path, body in calls:
        assert client.post(path, json=body, headers=bearer(key)).status_code == 200
    for path, body in calls:
        response = client.post(path, json=body, headers=bearer(key))
        assert response.status_code == 429, response.text
        assert "2 requests per minute" in response.json()["error"]["message"]
    # The tokens a text has count against tokens per minute, as a prompt's do.
    key = new_key(server, "tokenizer-fifteen-tokens", "--tokens-per-minute", "15")
    tokenized = client.post("/api/tokenize", json={"text": "The capital of France is"}, headers=bearer(key))
    assert tokenized.json()["count"] == 5
    response = client.post("/api/generate", json={**PROMPT, "max_tokens": 8}, headers=bearer(key))  # 6 + 8
    assert response.status_code == 429, response.text
    assert "15 tokens per minute (5 used)" in response.json()["error"]["message"]


def test_a_text_over_the_tokenize_limit_is_refused_before_any_work(client, server):
    """Before: any text the body limit let through was tokenized (30 texts of 900 KB at once
    held a generation up for 30 s)."""
    key = new_key(server, "long-text")
    response = client.post("/api/tokenize", json={"text": "a" * 100_001}, headers=bearer(key))
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["field"] == "text"
    assert "100000 characters" in error["message"]


def test_usage_is_recorded_per_key_and_model_and_shown_in_the_admin(client, server):
    key = new_key(server, "usage-key")
    bodies = [client.post("/api/generate", json=PROMPT, headers=bearer(key)).json() for _ in range(2)]
    chat = client.post(
        "/api/chat", json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3},
        headers=bearer(key),
    ).json()
    bodies.append(chat)
    usage = key_usage(server, "usage-key")
    assert usage == [
        MODEL, 3, sum(body["prompt_tokens"] for body in bodies), sum(body["tokens_generated"] for body in bodies)
    ]
    with admin_session(server.url, ADMIN_USER, ADMIN_PASSWORD) as admin:
        listing = admin.get("/admin/access/dailyusage/").text  # today's row: the totals
        assert "usage-key" in listing
        assert f">{usage[2]}<" in listing and f">{usage[3]}<" in listing


def test_a_key_made_in_the_admin_is_shown_once_and_works(client, server):
    with admin_session(server.url, ADMIN_USER, ADMIN_PASSWORD) as admin:
        fields = form_fields(admin.get("/admin/access/apikey/add/").text)
        fields.pop("allowed_models", None)  # none selected: every model
        page = admin.post(
            "/admin/access/apikey/add/", data={**fields, "name": "from-admin", "requests_per_minute": "100"}
        )
        assert page.status_code == 200
        secret = re.search(r"(llm-[A-Za-z0-9_-]{43})", page.text).group(1)
        assert client.post("/api/generate", json=PROMPT, headers=bearer(secret)).status_code == 200
        # Only its hash is stored: the secret appears nowhere in the admin afterwards.
        assert secret not in admin.get("/admin/access/apikey/").text
        change_url = re.search(r'href="(/admin/access/apikey/\d+/change/)"[^>]*>from-admin', admin.get(
            "/admin/access/apikey/").text).group(1)
        assert secret not in admin.get(change_url).text
        stored = server.manage(
            "shell", "-c", "from access.models import ApiKey; print(ApiKey.objects.get(name='from-admin').key_hash)"
        )
        assert secret not in stored


def test_the_admin_needs_a_login(client):
    for path in ["/admin/", "/admin/access/apikey/", "/admin/access/dailyusage/", "/admin/catalog/modelentry/"]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["location"].startswith("/admin/login/")


def test_the_openai_api_takes_the_same_keys_limits_and_usage(client, server):
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    response = client.post("/v1/chat/completions", json=chat)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    start_of_a_fresh_minute()
    key = new_key(server, "openai-key", "--requests-per-minute", "1")
    answer = client.post("/v1/chat/completions", json=chat, headers=bearer(key))
    assert answer.status_code == 200, answer.text
    assert client.post("/v1/chat/completions", json=chat, headers=bearer(key)).status_code == 429
    tokens = answer.json()["usage"]
    assert key_usage(server, "openai-key") == [MODEL, 1, tokens["prompt_tokens"], tokens["completion_tokens"]]


# --- The per-minute windows, in-process against the test database (fast) -----------------


@pytest.mark.django_db
def test_a_new_minute_starts_a_new_window_and_retry_after_counts_down():
    from datetime import datetime, timezone

    from access.models import RateWindow
    from access.services import admit_request, create_api_key
    from common.errors import RateLimited

    api_key, _ = create_api_key(name="windows", requests_per_minute=1)
    first = datetime(2026, 1, 1, 12, 0, 45, tzinfo=timezone.utc)
    assert admit_request(api_key=api_key, prompt_tokens=5, now=first).minute == first.replace(second=0)
    with pytest.raises(RateLimited) as refused:
        admit_request(api_key=api_key, prompt_tokens=5, now=first.replace(second=50, microsecond=500_000))
    assert refused.value.retry_after == 10  # 9.5 s left in the minute, rounded up
    next_minute = first.replace(minute=1, second=2)
    assert admit_request(api_key=api_key, prompt_tokens=5, now=next_minute).minute == next_minute.replace(second=0)
    # The past minute's row is gone; the current one holds this minute's request and prompt.
    assert list(RateWindow.objects.filter(api_key=api_key).values_list("requests", "tokens")) == [(1, 5)]


@pytest.mark.django_db
def test_a_key_without_limits_counts_nothing_and_a_prompt_over_the_token_limit_is_a_400():
    from access.models import RateWindow
    from access.services import admit_request, create_api_key
    from common.errors import InvalidRequest

    unlimited, _ = create_api_key(name="unlimited")
    assert admit_request(api_key=unlimited, prompt_tokens=10**6) is None
    assert not RateWindow.objects.exists()
    small, _ = create_api_key(name="small", tokens_per_minute=10)
    with pytest.raises(InvalidRequest, match="over this API key's limit of 10 tokens per minute"):
        admit_request(api_key=small, prompt_tokens=11)


@pytest.mark.django_db
def test_a_tokenizer_request_reserves_its_estimate_up_to_the_limit_then_counts_its_tokens():
    from access.models import RateWindow
    from access.services import admit_tokenizer_request, create_api_key, settle_tokens
    from common.errors import RateLimited

    api_key, _ = create_api_key(name="tokenizer", tokens_per_minute=100)
    admission = admit_tokenizer_request(api_key=api_key, estimate=500)  # a text of 500 characters
    assert RateWindow.objects.get(api_key=api_key).tokens == 100  # reserved: at most the limit
    with pytest.raises(RateLimited, match=r"100 tokens per minute \(100 used\)"):
        admit_tokenizer_request(api_key=api_key, estimate=1)
    settle_tokens(admission=admission, used_tokens=60)  # its real count
    assert RateWindow.objects.get(api_key=api_key).tokens == 60
    assert admit_tokenizer_request(api_key=api_key, estimate=40).reserved_tokens == 40


@pytest.mark.django_db
def test_the_authenticated_key_brings_its_models_so_the_check_needs_no_query(django_assert_num_queries):
    from access.authentication import authenticate_bearer
    from access.services import check_model_allowed, create_api_key
    from common.errors import ModelNotAllowed

    _, limited = create_api_key(name="gemma-only", model_ids=(MODEL,))
    _, open_key = create_api_key(name="every-model")
    with django_assert_num_queries(2):  # the key, and its models' ids
        limited_key = authenticate_bearer(f"Bearer {limited}")
    every_model_key = authenticate_bearer(f"Bearer {open_key}")
    with django_assert_num_queries(0):
        check_model_allowed(api_key=limited_key, model_id=MODEL)
        check_model_allowed(api_key=every_model_key, model_id="HuggingFaceTB/SmolLM2-135M-Instruct")
        with pytest.raises(ModelNotAllowed, match="may not use model 'HuggingFaceTB/SmolLM2-135M-Instruct'"):
            check_model_allowed(api_key=limited_key, model_id="HuggingFaceTB/SmolLM2-135M-Instruct")
