"""The per-minute windows of API keys, in process against the test database (the keys on a
real server: tests/e2e/test_api_keys.py)."""

import pytest


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

    _, limited = create_api_key(name="gemma-only", model_ids=("google/gemma-3-270m",))
    _, open_key = create_api_key(name="every-model")
    with django_assert_num_queries(2):  # the key, and its models' ids
        limited_key = authenticate_bearer(f"Bearer {limited}")
    every_model_key = authenticate_bearer(f"Bearer {open_key}")
    with django_assert_num_queries(0):
        check_model_allowed(api_key=limited_key, model_id="google/gemma-3-270m")
        check_model_allowed(api_key=every_model_key, model_id="HuggingFaceTB/SmolLM2-135M-Instruct")
        with pytest.raises(ModelNotAllowed, match="may not use model 'HuggingFaceTB/SmolLM2-135M-Instruct'"):
            check_model_allowed(api_key=limited_key, model_id="HuggingFaceTB/SmolLM2-135M-Instruct")


@pytest.mark.django_db
def test_a_full_window_is_refused_before_counting_and_an_open_one_counts_nothing():
    from access.models import RateWindow
    from access.services import admit_request, check_window_open, create_api_key
    from common.errors import RateLimited

    by_requests, _ = create_api_key(name="by requests", requests_per_minute=2)
    check_window_open(api_key=by_requests)  # no window yet
    admit_request(api_key=by_requests, prompt_tokens=1)
    check_window_open(api_key=by_requests)  # one request of two: open, and still one counted
    assert RateWindow.objects.get(api_key=by_requests).requests == 1
    admit_request(api_key=by_requests, prompt_tokens=1)
    with pytest.raises(RateLimited, match="2 requests per minute"):
        check_window_open(api_key=by_requests)
    by_tokens, _ = create_api_key(name="by tokens", tokens_per_minute=10)
    admit_request(api_key=by_tokens, prompt_tokens=4, max_tokens=6)
    with pytest.raises(RateLimited, match=r"10 tokens per minute \(10 used\)"):
        check_window_open(api_key=by_tokens)
