"""Usage per key (or none), model and day: the rows one generation adds to, their retention,
the sums per day that the admin's charts draw, and the admin pages (in-process, against the
test database: no server)."""

import re
from datetime import date, datetime, timedelta, timezone

import pytest

from access.models import DailyUsage
from access.selectors import usage_by_day, usage_by_model
from access.services import GenerationUsage, create_api_key, delete_expired_usage, record_usage

MODEL, OTHER = "google/gemma-3-270m", "test/other"
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _no_usage_rows_yet(db):
    """Each test counts from nothing: generations that other tests run in-process (test_tracing's)
    record their usage from a thread with a connection of its own, outside those tests' transactions."""
    DailyUsage.objects.all().delete()


def generation(model=MODEL, prompt=6, generated=4, outcome="finished", first_token=0.1, duration=0.5):
    return GenerationUsage(model_id=model, prompt_tokens=prompt, generated_tokens=generated, outcome=outcome,
                           time_to_first_token=first_token, duration=duration)


@pytest.mark.django_db
def test_one_row_per_day_key_and_model_adds_up_counts_tokens_and_latency():
    key, _ = create_api_key(name="usage")
    record_usage(api_key=key, usage=generation(first_token=0.1, duration=0.5), now=NOON)
    record_usage(api_key=key, usage=generation(prompt=10, generated=8, first_token=0.3, duration=1.5), now=NOON)
    record_usage(api_key=key, usage=generation(generated=2, outcome="cancelled", duration=9.0), now=NOON)
    record_usage(api_key=key, usage=generation(generated=0, outcome="failed", first_token=None), now=NOON)
    row = DailyUsage.objects.get()
    assert (row.day, row.api_key, row.model_id) == (date(2026, 3, 10), key, MODEL)
    assert (row.requests, row.finished, row.failed, row.cancelled) == (4, 2, 1, 1)
    assert (row.prompt_tokens, row.generated_tokens) == (6 + 10 + 6 + 6, 4 + 8 + 2 + 0)
    # Latency of the finished ones only: a cancelled generation's 9 s is its client's choice.
    assert (row.duration_ms_sum, row.duration_ms_max) == (2000, 1500)
    assert (row.time_to_first_token_ms_sum, row.time_to_first_token_ms_max) == (400, 300)
    assert row.last_used_at == NOON


@pytest.mark.django_db
def test_requests_without_a_key_have_rows_of_their_own_per_model_and_day():
    key, _ = create_api_key(name="keyed")
    for now in (NOON, NOON + timedelta(hours=11, minutes=59)):  # the same day, in UTC
        record_usage(api_key=None, usage=generation(), now=now)
    record_usage(api_key=None, usage=generation(model=OTHER), now=NOON)
    record_usage(api_key=None, usage=generation(), now=NOON + timedelta(days=1))
    record_usage(api_key=key, usage=generation(), now=NOON)
    rows = DailyUsage.objects.values_list("day", "api_key", "model_id", "requests")
    assert set(rows) == {
        (date(2026, 3, 10), None, MODEL, 2),
        (date(2026, 3, 10), None, OTHER, 1),
        (date(2026, 3, 10), key.pk, MODEL, 1),
        (date(2026, 3, 11), None, MODEL, 1),
    }


@pytest.mark.django_db
def test_a_finished_generation_without_tokens_counts_its_duration_as_time_to_first_token():
    record_usage(api_key=None, usage=generation(generated=0, first_token=None, duration=0.25), now=NOON)
    row = DailyUsage.objects.get()
    assert (row.time_to_first_token_ms_sum, row.time_to_first_token_ms_max) == (250, 250)


@pytest.mark.django_db
def test_a_limited_keys_max_tokens_are_reserved_in_its_minute_and_the_unused_given_back():
    from access.models import RateWindow
    from access.services import admit_request

    key, _ = create_api_key(name="limited", tokens_per_minute=1000)
    admission = admit_request(api_key=key, prompt_tokens=6, max_tokens=16, now=NOON)
    assert RateWindow.objects.get(api_key=key).tokens == 22
    record_usage(api_key=key, usage=generation(generated=4), admission=admission, now=NOON)
    assert RateWindow.objects.get(api_key=key).tokens == 10


@pytest.mark.django_db
def test_rows_past_the_retention_are_deleted_when_a_new_row_is_made(settings):
    settings.LLM_USAGE_RETENTION_DAYS = 30
    for days_ago in (31, 30, 1):
        record_usage(api_key=None, usage=generation(), now=NOON - timedelta(days=days_ago))
    # Made in order: each new row deleted what was past 30 days then, nothing yet.
    assert DailyUsage.objects.count() == 3
    record_usage(api_key=None, usage=generation(), now=NOON)  # today's first row
    assert sorted(DailyUsage.objects.values_list("day", flat=True)) == [
        date(2026, 2, 8), date(2026, 3, 9), date(2026, 3, 10)
    ]
    # Adding to an existing row deletes nothing: the cleanup runs once per new row.
    DailyUsage.objects.create(day=date(2020, 1, 1), model_id=MODEL)
    record_usage(api_key=None, usage=generation(), now=NOON)
    assert DailyUsage.objects.filter(day=date(2020, 1, 1)).exists()


@pytest.mark.django_db
def test_retention_zero_keeps_everything_and_the_command_prunes(settings):
    from django.core.management import call_command

    DailyUsage.objects.create(day=date(2020, 1, 1), model_id=MODEL)
    DailyUsage.objects.create(day=datetime.now(timezone.utc).date(), model_id=MODEL)
    settings.LLM_USAGE_RETENTION_DAYS = 0
    assert delete_expired_usage() == 0
    settings.LLM_USAGE_RETENTION_DAYS = 7
    call_command("prune_usage")
    assert list(DailyUsage.objects.values_list("day", flat=True)) == [datetime.now(timezone.utc).date()]
    # --days instead of the setting.
    DailyUsage.objects.create(day=datetime.now(timezone.utc).date() - timedelta(days=3), model_id=MODEL)
    call_command("prune_usage", days=5)
    assert DailyUsage.objects.count() == 2
    call_command("prune_usage", days=2)
    assert DailyUsage.objects.count() == 1


@pytest.mark.django_db
def test_an_unknown_outcome_is_refused():
    with pytest.raises(ValueError):
        record_usage(api_key=None, usage=generation(outcome="teapot"), now=NOON)


@pytest.mark.django_db
def test_usage_by_day_sums_keys_and_models_and_gives_means_and_maxima():
    key, _ = create_api_key(name="chart")
    record_usage(api_key=key, usage=generation(first_token=0.1, duration=1.0), now=NOON)
    record_usage(api_key=None, usage=generation(model=OTHER, first_token=0.3, duration=2.0), now=NOON)
    record_usage(api_key=None, usage=generation(outcome="cancelled"), now=NOON + timedelta(days=2))
    days = usage_by_day()
    assert [day["day"] for day in days] == ["2026-03-10", "2026-03-12"]
    first, last = days
    assert (first["requests"], first["finished"], first["prompt_tokens"], first["generated_tokens"]) == (2, 2, 12, 8)
    assert (first["duration_ms_mean"], first["duration_ms_max"]) == (1500.0, 2000)
    assert (first["time_to_first_token_ms_mean"], first["time_to_first_token_ms_max"]) == (200.0, 300)
    # A day without a finished generation has no latency (not zero).
    assert (last["requests"], last["cancelled"]) == (1, 1)
    assert (last["duration_ms_mean"], last["duration_ms_max"], last["time_to_first_token_ms_mean"]) == (None, None, None)
    # Filtered as the admin's list filters do: one key, one model.
    assert [day["requests"] for day in usage_by_day(queryset=DailyUsage.objects.filter(api_key=key))] == [1]
    assert [day["day"] for day in usage_by_day(queryset=DailyUsage.objects.filter(model_id=OTHER))] == ["2026-03-10"]


@pytest.mark.django_db
def test_usage_by_model_gives_a_keys_totals_over_the_days_kept():
    key, _ = create_api_key(name="totals")
    for days_ago in (0, 1, 2):
        record_usage(api_key=key, usage=generation(), now=NOON - timedelta(days=days_ago))
    record_usage(api_key=key, usage=generation(model=OTHER), now=NOON)
    record_usage(api_key=None, usage=generation(), now=NOON)
    totals = usage_by_model(api_key=key)
    assert [(row["model_id"], row["requests"], row["prompt_tokens"], row["generated_tokens"]) for row in totals] == [
        (MODEL, 3, 18, 12), (OTHER, 1, 6, 4)
    ]
    assert totals[0]["first_day"] == date(2026, 3, 8)
    assert [row["requests"] for row in usage_by_model(api_key=None)] == [1]


@pytest.mark.django_db
def test_the_admin_lists_usage_with_chart_data_and_the_keys_page_its_totals(admin_client):
    key, _ = create_api_key(name="admin-chart")
    record_usage(api_key=key, usage=generation(), now=NOON)
    record_usage(api_key=None, usage=generation(model=OTHER, prompt=7), now=NOON)
    page = admin_client.get("/admin/access/dailyusage/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="usage-by-day"' in html and "plotly/plotly.min.js" in html and "usage_charts.js" in html
    assert page.context["usage_by_day"][0]["requests"] == 2
    # The keyless requests' row, and their choice in the key filter.
    assert '<td class="field-key">No key</td>' in html
    assert re.search(r'<a href="\?api_key__isnull=True"[^>]*>No key</a>', html)
    # Filtered to the requests without a key: the chart's data follows the filter.
    filtered = admin_client.get("/admin/access/dailyusage/?api_key__isnull=True")
    assert [day["prompt_tokens"] for day in filtered.context["usage_by_day"]] == [7]
    by_key = admin_client.get(f"/admin/access/dailyusage/?api_key__id__exact={key.pk}")
    assert [day["prompt_tokens"] for day in by_key.context["usage_by_day"]] == [6]
    change = admin_client.get(f"/admin/access/apikey/{key.pk}/change/").content.decode()
    assert MODEL in change and f"?api_key__id__exact={key.pk}" in change
    # A day without a finished generation has no mean latency (not 0).
    record_usage(api_key=None, usage=generation(outcome="cancelled"), now=NOON - timedelta(days=1))
    html = admin_client.get("/admin/access/dailyusage/").content.decode()
    assert '<td class="field-mean_duration_ms">-</td>' in html


def test_plotly_is_served_from_the_package_and_its_injected_styles_are_known():
    from django.contrib.staticfiles import finders

    from access.charts import PLOTLY_JS, bundled_style_ids

    path = finders.find(PLOTLY_JS)
    assert path and path.endswith("plotly.min.js")
    assert all(ids for ids in bundled_style_ids())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("keyed", [False, True])
def test_a_row_made_by_another_process_meanwhile_is_added_to_not_doubled(monkeypatch, keyed):
    """Two processes' first generations of a day: both find no row, one insert fails on the
    unique constraint (a partial one for requests without a key), and adds to the other's."""
    from access import services

    key = create_api_key(name="race")[0] if keyed else None
    record_usage(api_key=key, usage=generation(), now=NOON)
    add_to, calls = services._add_to, []

    def misses_first(rows, additions, now):
        calls.append(now)
        return 0 if len(calls) == 1 else add_to(rows, additions, now)

    monkeypatch.setattr(services, "_add_to", misses_first)
    record_usage(api_key=key, usage=generation(), now=NOON)
    assert list(DailyUsage.objects.values_list("requests", flat=True)) == [2]


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_the_totals_of_earlier_versions_on_the_day_of_their_last_use():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("access", "0001_initial")])
    old = executor.loader.project_state([("access", "0001_initial")]).apps
    key = old.get_model("access", "ApiKey").objects.create(name="old", prefix="llm-x", key_hash="h" * 64)
    old.get_model("access", "KeyUsage").objects.create(
        api_key=key, model_id=MODEL, requests=5, prompt_tokens=30, generated_tokens=40, last_used_at=NOON
    )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    row = DailyUsage.objects.get()
    assert (row.day, row.api_key_id, row.model_id, row.requests, row.prompt_tokens, row.generated_tokens) == (
        date(2026, 3, 10), key.pk, MODEL, 5, 30, 40
    )
    assert (row.finished, row.duration_ms_sum) == (0, 0)  # their outcomes and latency were not recorded
    # Back: the days' sums become totals again.
    executor = MigrationExecutor(connection)
    executor.migrate([("access", "0001_initial")])
    old = executor.loader.project_state([("access", "0001_initial")]).apps
    totals = old.get_model("access", "KeyUsage").objects.values_list("model_id", "requests", "prompt_tokens")
    assert list(totals) == [(MODEL, 5, 30)]
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
