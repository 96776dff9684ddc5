"""Reading a server's Prometheus metrics in tests."""

import httpx
from prometheus_client.parser import text_string_to_metric_families


def metric(url: str, name: str, **labels) -> float:
    """The sum of the samples of `name` whose labels include `labels`, scraped from the server at `url`."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )
