"""NVIDIA's aiperf, a benchmark client from PyPI, run beside our own benchmark on the same workload.

aiperf lives in a virtualenv of its own (requirements-aiperf.txt: its dependencies clash with
ours) and is run as a program, one run per level: prompts of exactly N tokens of the model's
tokenizer (its own synthetic text, counted with the tokenizer.json that the service loads,
given as a local folder: no hub access), a fixed number of output tokens, a number of
concurrent streams. Its per-request records go through our statistics (`LevelStats.of`), so
that a difference between the two is one of measurement, not of arithmetic; its own summary
is kept beside them.
"""

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmark.prompts import PromptMaker
from benchmark.runner import Level, LevelStats, Plan, TargetLevel, Workload, run_level
from benchmark.targets import RequestResult

# What a run's folder holds: one JSON line per request, and aiperf's own summary.
RECORDS = "profile_export.jsonl"
SUMMARY = "profile_export_aiperf.json"

# Target names in the results.
BENCH, AIPERF, AIPERF_OWN = "bench", "aiperf", "aiperf-own"


def command(aiperf: str, *, url: str, model: str, tokenizer_dir: Path, level: Level, requests: int,
            max_tokens: int, seed: int, out: Path, api_key: str = "") -> list[str]:
    """The command line of one aiperf run: `requests` streamed, greedy completions of `level`."""
    argv = [
        aiperf, "profile",
        "--url", url, "--model", model,
        "--endpoint-type", "completions", "--streaming",  # POST /v1/completions, as --openai
        "--tokenizer", str(tokenizer_dir),  # a local folder holding tokenizer.json
        "--isl", str(level.prompt_tokens), "--isl-stddev", "0",
        "--osl", str(max_tokens), "--osl-stddev", "0",
        "--extra-inputs", "temperature:0",
        "--concurrency", str(level.concurrency), "--request-count", str(requests),
        "--random-seed", str(seed),
        # Its own services kept few (they share the cores with the engine), no scraping of the
        # server's /metrics and no GPU probe during the run, no terminal UI.
        "--workers-max", "1", "--record-processors", "1",
        "--no-server-metrics", "--no-gpu-telemetry", "--ui", "none",
        "--export-level", "records", "--output-artifact-dir", str(out),
    ]
    return argv + (["--api-key", api_key] if api_key else [])


def environment() -> dict[str, str]:
    """aiperf's environment: ours without the hub's offline switches, with which aiperf 0.13.0 looks a local
    tokenizer folder up as a hub repository id (and fails); a local folder needs no hub either way."""
    return {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}


def _value(metrics: dict, name: str) -> float | None:
    metric = metrics.get(name)
    return None if metric is None else metric["value"]


def records(out: Path) -> tuple[list[RequestResult], list[int | None], float]:
    """The requests of a run's profiling phase, with their prompt tokens (aiperf's count of the
    text, as ours: no BOS) and the seconds from the first request's start to the last one's end."""
    results, prompt_tokens = [], []
    for line in (out / RECORDS).read_text().splitlines():
        record = json.loads(line)
        metadata, metrics = record["metadata"], record.get("metrics") or {}
        if metadata.get("benchmark_phase") != "profiling":
            continue
        started = metadata["request_start_ns"] / 1e9
        finished = metadata["request_end_ns"] / 1e9
        ttft = _value(metrics, "time_to_first_token")
        error = record.get("error")
        results.append(RequestResult(
            started=started,
            first_text_at=None if ttft is None else started + ttft / 1000,
            finished_at=finished,
            # The server's count (its usage chunk), as our benchmark's; aiperf's own summary counts
            # the tokens of the text with the tokenizer.
            tokens=int(_value(metrics, "usage_completion_tokens") or _value(metrics, "output_sequence_length") or 0),
            error=None if error is None else str(error.get("message") or error)[:200],
        ))
        prompt_tokens.append(_value(metrics, "input_sequence_length"))
    if not results:
        raise ValueError(f"{out / RECORDS} has no request of the profiling phase")
    seconds = max(r.finished_at for r in results) - min(r.started for r in results)
    return results, prompt_tokens, seconds


def own_stats(out: Path) -> LevelStats:
    """aiperf's own summary of a run, in our statistics' shape."""
    summary = json.loads((out / SUMMARY).read_text())

    def stat(name: str, key: str) -> float | None:
        return summary.get(name, {}).get(key)

    requests = int(stat("request_count", "avg") or 0)
    return LevelStats(
        requests=requests,
        errors=requests - int(stat("completed_request_count", "avg") or requests),
        seconds=stat("benchmark_duration", "avg"),
        tokens=int(stat("total_output_tokens", "avg") or 0),
        tokens_per_second=stat("output_token_throughput", "avg"),
        stream_tokens_per_second=stat("output_token_throughput_per_user", "p50"),
        requests_per_second=stat("request_throughput", "avg"),
        ttft_p50_ms=stat("time_to_first_token", "p50"),
        ttft_p95_ms=stat("time_to_first_token", "p95"),
        prompt_tokens=stat("input_sequence_length", "p50"),
        prefill_tokens_per_second=stat("prefill_throughput_per_user", "p50"),
    )


async def run_side_by_side(bench_target, run_aiperf: Callable[[Level, int, int], Awaitable[Path]], plan: Plan,
                           maker: PromptMaker, on_done: Callable = lambda: None) -> list[TargetLevel]:
    """Our benchmark (`bench_target`, through `run_level`) and aiperf alternated level by level,
    which of the two goes first rotating each round. `run_aiperf(level, requests, seed)` runs
    aiperf and answers its output folder."""
    workload = Workload(plan, maker)
    levels = plan.levels()
    results = {
        (name, level): TargetLevel(target=name, kind=kind, url=url, level=level)
        for name, kind, url in (
            (BENCH, bench_target.kind, bench_target.url), (AIPERF, "aiperf", bench_target.url),
            (AIPERF_OWN, "aiperf", bench_target.url),
        )
        for level in levels
    }
    for round_index in range(plan.rounds):
        for index, level in enumerate(levels):
            for turn in (0, 1) if round_index % 2 == 0 else (1, 0):
                requests = plan.requests_at(level)
                if turn == 0:
                    prompts = workload.prompts(level)
                    stats, _ = await run_level(bench_target, level.concurrency, prompts, plan.max_tokens, on_done)
                    results[(BENCH, level)].rounds.append(stats)
                    continue
                out = await run_aiperf(level, requests, plan.seed * 1000 + round_index * len(levels) + index)
                done, prompt_tokens, seconds = records(out)
                results[(AIPERF, level)].rounds.append(LevelStats.of(done, seconds, prompt_tokens))
                results[(AIPERF_OWN, level)].rounds.append(own_stats(out))
                for _ in done:
                    on_done()
    return list(results.values())

