"""`manage.py bench_aiperf`'s own parts: aiperf's command line, its records and summary read into our
statistics, and the alternation of the two benchmarks level by level (aiperf itself, a separate install
that drives a real server, is run by hand: docs/performance.md, "A third-party benchmark")."""

import asyncio
import itertools
import json

import pytest

from benchmark import aiperf
from benchmark.prompts import Prompt, PromptMaker
from benchmark.runner import Level, Plan
from benchmark.targets import RequestResult
from tests.support.word_tokenizer import word_tokenizer


def _record(phase: str, start_s: float, ttft_ms: float | None, end_s: float, *, usage: int | None = 8,
            counted: int = 9, error: dict | None = None) -> dict:
    metrics = {"input_sequence_length": {"value": 128, "unit": "tokens"},
               "output_sequence_length": {"value": counted, "unit": "tokens"}}
    if ttft_ms is not None:
        metrics["time_to_first_token"] = {"value": ttft_ms, "unit": "ms"}
    if usage is not None:
        metrics["usage_completion_tokens"] = {"value": usage, "unit": "tokens"}
    record = {"metadata": {"benchmark_phase": phase, "request_start_ns": int(start_s * 1e9),
                           "request_end_ns": int(end_s * 1e9)}, "metrics": metrics}
    return record | ({"error": error} if error else {})


def _write_run(folder, records: list[dict], ttft_p50_ms: float = 250.0):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / aiperf.RECORDS).write_text("\n".join(json.dumps(r) for r in records) + "\n")
    summary = {
        "request_count": {"avg": 2.0}, "completed_request_count": {"avg": 2.0}, "benchmark_duration": {"avg": 3.0},
        "total_output_tokens": {"avg": 18.0}, "output_token_throughput": {"avg": 6.0},
        "output_token_throughput_per_user": {"p50": 7.5}, "request_throughput": {"avg": 0.67},
        "time_to_first_token": {"p50": ttft_p50_ms, "p95": 400.0}, "input_sequence_length": {"p50": 128.0},
        "prefill_throughput_per_user": {"p50": 512.0},
    }
    (folder / aiperf.SUMMARY).write_text(json.dumps(summary))


def test_the_command_asks_for_the_level_greedy_streamed_completions_and_the_local_tokenizer(tmp_path):
    argv = aiperf.command("aiperf", url="http://127.0.0.1:8291", model="google/gemma-3-270m",
                          tokenizer_dir=tmp_path, level=Level(4, 512), requests=8, max_tokens=32, seed=7,
                          out=tmp_path / "run")
    options = dict(itertools.pairwise(argv))
    assert argv[:2] == ["aiperf", "profile"] and "--streaming" in argv and "--api-key" not in argv
    assert options["--endpoint-type"] == "completions" and options["--tokenizer"] == str(tmp_path)
    lengths = [options[name] for name in ("--isl", "--isl-stddev", "--osl", "--osl-stddev")]
    assert lengths == ["512", "0", "32", "0"]
    assert (options["--concurrency"], options["--request-count"], options["--random-seed"]) == ("4", "8", "7")
    assert options["--extra-inputs"] == "temperature:0" and "--no-server-metrics" in argv
    keyed = aiperf.command("aiperf", url="u", model="m", tokenizer_dir=tmp_path, level=Level(1, 8), requests=1,
                           max_tokens=1, seed=0, out=tmp_path, api_key="secret")
    assert keyed[-2:] == ["--api-key", "secret"]


def test_aiperf_runs_without_the_hubs_offline_switches(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    environment = aiperf.environment()
    assert "HF_HUB_OFFLINE" not in environment and "TRANSFORMERS_OFFLINE" not in environment
    assert environment["PATH"]


def test_records_keep_the_profiling_phase_and_count_the_servers_tokens(tmp_path):
    _write_run(tmp_path, [
        _record("warmup", 0.0, 100.0, 1.0),
        _record("profiling", 10.0, 200.0, 11.2),
        _record("profiling", 10.5, 300.0, 12.5, usage=None, counted=7),
        _record("profiling", 11.0, None, 11.1, usage=None, counted=0, error={"message": "HTTP 429"}),
    ])
    results, prompt_tokens, seconds = aiperf.records(tmp_path)
    assert [r.tokens for r in results] == [8, 7, 0]  # the usage chunk's count, else aiperf's
    assert results[0].ttft == pytest.approx(0.2) and results[1].ttft == pytest.approx(0.3)
    assert results[2].error == "HTTP 429" and results[2].first_text_at is None
    assert prompt_tokens == [128, 128, 128]
    assert seconds == pytest.approx(2.5)  # the first start to the last end


def test_a_run_without_profiled_requests_is_refused(tmp_path):
    _write_run(tmp_path, [_record("warmup", 0.0, 100.0, 1.0)])
    with pytest.raises(ValueError, match="no request of the profiling phase"):
        aiperf.records(tmp_path)


def test_aiperfs_own_summary_in_our_statistics(tmp_path):
    _write_run(tmp_path, [])
    stats = aiperf.own_stats(tmp_path)
    assert (stats.requests, stats.errors, stats.tokens, stats.seconds) == (2, 0, 18, 3.0)
    assert (stats.tokens_per_second, stats.stream_tokens_per_second) == (6.0, 7.5)
    assert (stats.ttft_p50_ms, stats.ttft_p95_ms, stats.prefill_tokens_per_second) == (250.0, 400.0, 512.0)


class _FakeTarget:
    kind, url = "openai", "http://bench"

    def __init__(self, calls: list):
        self.calls = calls
        self.prompts: list[str] = []

    async def generate(self, prompt: Prompt, max_tokens: int) -> RequestResult:
        self.prompts.append(prompt.text)
        self.calls.append("bench")
        return RequestResult(started=0.0, first_text_at=0.1, finished_at=1.0, tokens=max_tokens)


def test_the_two_benchmarks_alternate_level_by_level_and_each_round_the_other_goes_first(tmp_path):
    calls: list = []
    target = _FakeTarget(calls)
    seeds = []

    async def run_aiperf(level: Level, requests: int, seed: int):
        calls.append(f"aiperf {level.prompt_tokens}/{level.concurrency}x{requests}")
        seeds.append(seed)
        folder = tmp_path / str(seed)
        _write_run(folder, [_record("profiling", 0.0, 200.0, 1.0)] * requests)
        return folder

    plan = Plan(concurrency=(1, 2), requests=1, max_tokens=4, rounds=2, prompt_tokens=(16,))
    maker = PromptMaker(word_tokenizer())
    results = asyncio.run(aiperf.run_side_by_side(target, run_aiperf, plan, maker))
    assert calls == [
        "bench", "aiperf 16/1x1", "bench", "bench", "aiperf 16/2x2",  # round 1: ours first
        "aiperf 16/1x1", "bench", "aiperf 16/2x2", "bench", "bench",  # round 2: aiperf first
    ]
    assert len(set(seeds)) == 4  # a new draw of aiperf's prompts for every run
    assert all(maker.count(prompt) == 16 for prompt in target.prompts) and len(set(target.prompts)) == 6
    by_name = {(r.target, r.level.concurrency): r for r in results}
    assert set(by_name) == {(name, c) for name in ("bench", "aiperf", "aiperf-own") for c in (1, 2)}
    assert all(len(result.rounds) == 2 for result in results)
    assert by_name[("aiperf", 2)].summary()["ttft_p50_ms"] == pytest.approx(200)  # its records, our statistics
    assert by_name[("aiperf-own", 2)].summary()["ttft_p50_ms"] == pytest.approx(250)  # its summary


def test_bench_aiperf_refuses_bad_options_and_an_unreadable_tokenizer(tmp_path):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="must be positive"):
        call_command("bench_aiperf", "http://127.0.0.1:9", "--prompt-tokens", "0")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(CommandError, match=r"Cannot make prompts of exact lengths with \S+tokenizer.json"):
        call_command("bench_aiperf", "http://127.0.0.1:9", "--prompt-tokens", "8", "--model", "m",
                     "--tokenizer", str(tmp_path / "tokenizer.json"))
