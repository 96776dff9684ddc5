"""The benchmark command runs against the real server, the engine in-process and in a worker, and its
output is well formed. No assertion on speed: timings on a shared machine mean nothing here."""

import json
import subprocess

import pytest


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
