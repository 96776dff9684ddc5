"""The PromQL reader that the monitoring tests (tests/e2e/test_metrics.py) rely on, and what the
engine reports counted per model (on the fake engine)."""

import pytest
from prometheus_client import REGISTRY

from tests.support.fake_worker import Script
from tests.support.promql import promql_metric_names
from tests.unit.conftest import BASE


def test_promql_metric_names_reads_names_not_functions_labels_or_variables():
    expr = ('histogram_quantile(0.95, sum by (model, le) (rate(llm_x_bucket{namespace="$namespace", '
            'model=~"a|b"}[$__rate_interval]))) / on (model) group_left max(llm_y) > bool 2 unless llm_z offset 5m')
    assert promql_metric_names(expr) == {"llm_x_bucket", "llm_y", "llm_z"}
    assert promql_metric_names('label_values(llm_w{namespace="$namespace"}, model)') == {"llm_w"}


def cached_tokens() -> float:
    labels = {"model": BASE, "endpoint": "generate"}
    return REGISTRY.get_sample_value("llm_prompt_tokens_cached_total", labels) or 0.0


@pytest.mark.django_db(transaction=True)
async def test_prefix_cache_hits_are_counted_per_model_as_the_engine_reports_them(api, engine):
    engine.script(Script(cached_prompt_tokens=0), Script(cached_prompt_tokens=17))
    before = cached_tokens()
    assert (await api.post("/api/generate", {"prompt": "A first turn"})).status_code == 200
    assert REGISTRY.get_sample_value("llm_prompt_tokens_cached_total", {"model": BASE, "endpoint": "generate"}) \
        is not None  # exported from the first generation on, hits or not (the dashboard reads it)
    assert cached_tokens() == before
    assert (await api.post("/api/generate", {"prompt": "A first turn, and a second"})).status_code == 200
    assert cached_tokens() == before + 17
