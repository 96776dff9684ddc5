"""The benchmark's arithmetic (levels, ratios, level statistics, the prefill rate), its refusals of bad
options, and docs/performance.md's tables, made again from their runs' JSON (the benchmark against real
targets, and prompts made with the bundled models' tokenizers: tests/e2e/test_bench.py)."""

import json

import pytest

from benchmark.docs_tables import markdown_table
from benchmark.runner import Level, LevelStats, Plan, TargetLevel, percentile, ratios
from benchmark.targets import RequestResult


def _stats(tokens_per_second: float, ttft_p50_ms: float) -> LevelStats:
    return LevelStats(
        requests=1, errors=0, seconds=1.0, tokens=int(tokens_per_second), tokens_per_second=tokens_per_second,
        stream_tokens_per_second=tokens_per_second, requests_per_second=1.0, ttft_p50_ms=ttft_p50_ms,
        ttft_p95_ms=ttft_p50_ms,
    )


def test_ratios_are_taken_round_by_round_then_the_median():
    service = TargetLevel("service", "openai", "u", Level(1), [_stats(45, 110), _stats(20, 300), _stats(48, 105)])
    direct = TargetLevel("direct", "direct", "-", Level(1), [_stats(50, 100), _stats(25, 280), _stats(50, 100)])
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
        "| target | streams | tok/s total | TTFT p50 ms | TTFT p95 ms | tok/s ratio to direct "
        "| TTFT p50 added to direct |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        "| direct | 1 | 31.0 | 70.0 | 90.0 |  |  |\n"
        "| service | 1 | 30.0 | 80.3 | 1234 | 0.97 | +10.3 ms |\n"
        "<!-- /bench-table -->\nAfter.\n"
    )


def test_levels_of_prompt_lengths_and_of_turns():
    assert Plan(concurrency=(1, 4)).levels() == [Level(1), Level(4)]
    assert Plan(concurrency=(1, 4), prompt_tokens=(16, 64)).levels() == [
        Level(1, 16), Level(4, 16), Level(1, 64), Level(4, 64)
    ]
    plan = Plan(concurrency=(1, 2), requests=1, chat_turns=3)
    assert plan.levels() == [Level(c, 64, turn) for c in (1, 2) for turn in (1, 2, 3)]
    assert plan.total_requests(targets=2) == 2 * (3 * 1 + 3 * 2)  # at least one conversation per stream


def test_level_stats_count_the_prefill_rate_of_the_requests_that_answered():
    ok = RequestResult(started=0.0, first_text_at=0.5, finished_at=1.5, tokens=11)
    slow = RequestResult(started=0.0, first_text_at=2.0, finished_at=3.0, tokens=11)
    failed = RequestResult(started=0.0, first_text_at=None, finished_at=0.5, tokens=0, error="HTTP 429")
    stats = LevelStats.of([failed, ok, slow], seconds=3.0, prompt_tokens=[500, 1000, 2000])
    assert stats.prompt_tokens == 1000  # of those sent, failed or not
    assert stats.prefill_tokens_per_second == pytest.approx(1500)  # median of 1000 / 0.5 and 2000 / 2
    assert LevelStats.of([ok], seconds=1.0).prefill_tokens_per_second is None  # short prompts: not counted


def test_a_table_of_prompt_lengths_and_turns_shows_the_prefill_rate():
    def result(target, turn, sent, ttft, prefill):
        return {"target": target, "concurrency": 1, "prompt_tokens": 64, "turn": turn,
                "median": {"tokens_per_second": 10.0, "ttft_p50_ms": ttft, "ttft_p95_ms": ttft,
                           "prompt_tokens": sent, "prefill_tokens_per_second": prefill}}

    run = {
        "results": [result("worker", 2, 160, 400.0, 400.0), result("direct", 1, 70, 100.0, 700.0),
                    result("worker", 1, 71, 110.0, 645.5), result("direct", 2, 161, 350.0, 460.0)],
        "ratios": [{"target": "worker", "baseline": "direct", "concurrency": 1, "prompt_tokens": 64, "turn": turn,
                    "tokens_per_second_ratio": 1.0, "ttft_p50_added_ms": added,
                    "prefill_tokens_per_second_ratio": ratio} for turn, added, ratio in ((1, 10, 0.92), (2, 50, 0.87))],
    }
    assert markdown_table(run).splitlines() == [
        "| target | turn | prompt tokens | streams | tok/s total | TTFT p50 ms | TTFT p95 ms | prefill tok/s ≈ "
        "| tok/s ratio to direct | TTFT p50 added to direct | prefill ratio to direct |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| direct | 1 | 70 | 1 | 10.0 | 100.0 | 100.0 | 700 |  |  |  |",
        "| worker | 1 | 71 | 1 | 10.0 | 110.0 | 110.0 | 646 | 1.00 | +10.0 ms | 0.92 |",
        "| direct | 2 | 161 | 1 | 10.0 | 350.0 | 350.0 | 460 |  |  |  |",
        "| worker | 2 | 160 | 1 | 10.0 | 400.0 | 400.0 | 400 | 1.00 | +50.0 ms | 0.87 |",
    ]


def test_bench_refuses_bad_prompt_lengths_and_an_unreadable_tokenizer(tmp_path):
    from django.core.management import CommandError, call_command

    target = ["--openai", "nobody=http://127.0.0.1:9", "--model", "m"]
    with pytest.raises(CommandError, match="--prompt-tokens must be positive, --chat-turns at least 0"):
        call_command("bench", *target, "--prompt-tokens", "0")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(CommandError, match=r"Cannot make prompts of exact lengths with \S+tokenizer.json"):
        call_command("bench", *target, "--prompt-tokens", "8", "--tokenizer", str(tmp_path / "tokenizer.json"))
