"""The metric names a PromQL expression selects (deploy/monitoring's dashboard and alerts)."""

import re

# PromQL words that look like metric names: operators and modifiers (functions are followed by "(").
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
                   "group_right", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression (PromQL, or a Grafana label_values() query) selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'", '""', expr)  # string literals
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables ($namespace, $__rate_interval)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # label matchers, ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)  # label lists
    if expr.strip().startswith("label_values("):  # label_values(metric, label): the label is not a metric
        expr = expr.rsplit(",", 1)[0]
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", expr):
        if not match.group(2) and match.group(1) not in PROMQL_KEYWORDS:
            names.add(match.group(1))
    return names
