"""The PromQL reader that the monitoring tests (tests/e2e/test_metrics.py) rely on."""

from tests.support.promql import promql_metric_names


def test_promql_metric_names_reads_names_not_functions_labels_or_variables():
    expr = ('histogram_quantile(0.95, sum by (model, le) (rate(llm_x_bucket{namespace="$namespace", '
            'model=~"a|b"}[$__rate_interval]))) / on (model) group_left max(llm_y) > bool 2 unless llm_z offset 5m')
    assert promql_metric_names(expr) == {"llm_x_bucket", "llm_y", "llm_z"}
    assert promql_metric_names('label_values(llm_w{namespace="$namespace"}, model)') == {"llm_w"}
