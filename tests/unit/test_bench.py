"""The benchmark's arithmetic (ratios, level statistics) and docs/performance.md's tables,
made again from their runs' JSON (the benchmark against real targets: tests/e2e/test_bench.py)."""

import json

import pytest

from benchmark.runner import LevelStats, TargetLevel, percentile, ratios
from benchmark.targets import RequestResult


def _stats(tokens_per_second: float, ttft_p50_ms: float) -> LevelStats:
    return LevelStats(
        requests=1, errors=0, seconds=1.0, tokens=int(tokens_per_second), tokens_per_second=tokens_per_second,
        stream_tokens_per_second=tokens_per_second, requests_per_second=1.0, ttft_p50_ms=ttft_p50_ms,
        ttft_p95_ms=ttft_p50_ms,
    )


def test_ratios_are_taken_round_by_round_then_the_median():
    service = TargetLevel("service", "openai", "u", 1, [_stats(45, 110), _stats(20, 300), _stats(48, 105)])
    direct = TargetLevel("direct", "direct", "in-process", 1, [_stats(50, 100), _stats(25, 280), _stats(50, 100)])
    (row,) = ratios([service, direct], "direct")
    assert row["tokens_per_second_ratio"] == pytest.approx(0.9)  # of 0.9, 0.8 and 0.96
    assert row["ttft_p50_added_ms"] == pytest.approx(10)  # of 10, 20 and 5


def test_level_stats_leave_failed_requests_out():
    ok = RequestResult(started=0.0, first_text_at=0.1, finished_at=1.1, tokens=11)
    failed = RequestResult(started=0.0, first_text_at=None, finished_at=0.5, tokens=0, error="HTTP 429")
    stats = LevelStats.of([ok, failed], seconds=2.0)
    assert (stats.requests, stats.errors, stats.tokens) == (2, 1, 11)
    assert stats.stream_tokens_per_second == pytest.approx(10)
    assert stats.ttft_p50_ms == pytest.approx(100)
    assert percentile([1, 2, 3, 4], 0.5) == 2.5 and percentile([5], 0.95) == 5


def test_the_performance_tables_match_their_runs():
    from django.core.management import call_command

    call_command("bench_docs", "--check")


def test_a_table_is_made_again_from_its_run(tmp_path):
    from django.core.management import CommandError, call_command

    run = {
        "results": [
            {"target": "service", "concurrency": 1,
             "median": {"tokens_per_second": 30.04, "ttft_p50_ms": 80.26, "ttft_p95_ms": 1234.5}},
            {"target": "direct", "concurrency": 1,
             "median": {"tokens_per_second": 31.0, "ttft_p50_ms": 70.0, "ttft_p95_ms": 90.0}},
        ],
        "ratios": [{"target": "service", "baseline": "direct", "concurrency": 1,
                    "tokens_per_second_ratio": 0.969, "ttft_p50_added_ms": 10.26}],
    }
    (tmp_path / "run.json").write_text(json.dumps(run))
    document = tmp_path / "doc.md"
    document.write_text("Before.\n<!-- bench-table: run.json -->\n| stale |\n<!-- /bench-table -->\nAfter.\n")
    with pytest.raises(CommandError, match="differs from its run's JSON"):
        call_command("bench_docs", str(document), "--check")
    call_command("bench_docs", str(document))
    assert document.read_text() == (
        "Before.\n<!-- bench-table: run.json -->\n"
        "| target | streams | tok/s total | TTFT p50 ms | TTFT p95 ms | tok/s ratio to direct | TTFT p50 added to direct |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        "| direct | 1 | 31.0 | 70.0 | 90.0 |  |  |\n"
        "| service | 1 | 30.0 | 80.3 | 1234 | 0.97 | +10.3 ms |\n"
        "<!-- /bench-table -->\nAfter.\n"
    )
