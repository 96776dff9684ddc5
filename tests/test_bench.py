"""The benchmark command runs against the real server, the engine in-process and in a worker, and its
output is well formed. No assertion on speed: timings on a shared machine mean nothing here."""

import json
import subprocess

import pytest

from benchmark.runner import LevelStats, TargetLevel, percentile, ratios
from benchmark.targets import RequestResult


def test_bench_against_the_live_server_and_the_engine_in_process_and_in_a_worker(live_server, tmp_path):
    plot = tmp_path / "bench.png"
    output = live_server.manage(
        "bench",
        "--openai", f"service={live_server.url}",
        "--native", f"native={live_server.url}",
        "--direct",
        "--worker",
        "--concurrency", "1", "2",  # the live server runs one generation and queues one
        "--requests", "2",
        "--max-tokens", "4",
        "--baseline", "direct",
        "--baseline", "native",
        "--json",
        "--plot", str(plot),
    )
    document = json.loads(output)

    assert document["plan"]["concurrency"] == [1, 2]
    assert {(t["name"], t["kind"]) for t in document["targets"]} == {
        ("service", "openai"), ("native", "native"), ("direct", "direct"), ("worker", "worker")
    }
    assert {(r["target"], r["concurrency"]) for r in document["results"]} == {
        (name, level) for name in ("service", "native", "direct", "worker") for level in (1, 2)
    }
    for result in document["results"]:
        (stats,) = result["rounds"]
        assert stats["requests"] == 2 and stats["errors"] == 0, result
        assert stats["tokens"] == 2 * 4  # greedy continuations of these prompts run to max_tokens
        assert 0 < stats["ttft_p50_ms"] <= stats["ttft_p95_ms"]
        assert stats["tokens_per_second"] > 0 and stats["requests_per_second"] > 0
        assert result["median"]["tokens_per_second"] == stats["tokens_per_second"]
    assert {(row["target"], row["baseline"], row["concurrency"]) for row in document["ratios"]} == {
        (name, baseline, level)
        for name, baseline in (
            ("service", "direct"), ("native", "direct"), ("worker", "direct"),
            ("service", "native"), ("direct", "native"), ("worker", "native"),
        )
        for level in (1, 2)
    }
    for row in document["ratios"]:
        assert row["tokens_per_second_ratio"] > 0 and row["stream_tokens_per_second_ratio"] > 0
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_bench_prints_tables_by_default(live_server):
    output = live_server.manage(
        "bench", "--openai", f"service={live_server.url}", "--concurrency", "1", "--requests", "1", "--max-tokens", "2"
    )
    assert "tok/s total" in output and "TTFT p50 ms" in output and "service" in output


def test_bench_reports_an_unreachable_target_clearly(live_server):
    with pytest.raises(subprocess.CalledProcessError) as failure:
        live_server.manage("bench", "--openai", "nobody=http://127.0.0.1:9", "--concurrency", "1", "--requests", "1")
    assert "nobody (http://127.0.0.1:9) failed its warm-up request: ConnectError" in failure.value.stderr


def test_bench_refuses_an_unknown_baseline(live_server):
    with pytest.raises(subprocess.CalledProcessError) as failure:
        live_server.manage("bench", "--openai", f"service={live_server.url}", "--baseline", "llama")
    assert "--baseline llama is none of the targets ['service']" in failure.value.stderr


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


# --- docs/performance.md's tables come from the runs' JSON ---

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
