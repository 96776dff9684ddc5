"""Benchmark results for people (a table, a plot) and for machines (JSON)."""

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.table import Table

from benchmark.runner import TargetLevel


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _sorted(results: Sequence[TargetLevel]) -> list[TargetLevel]:
    return sorted(results, key=lambda r: (r.level.prompt_tokens or 0, r.level.concurrency, r.level.turn or 0,
                                          r.target))


def _level_cells(level: dict, prompts: bool, turns: bool) -> list[str]:
    """The columns of a level: its streams, and its prompt length and turn when the run has them."""
    return ([str(level["prompt_tokens"])] if prompts else []) + ([str(level["turn"])] if turns else []) + [
        str(level["concurrency"])
    ]


def _level_columns(levels: Sequence[dict]) -> tuple[bool, bool, list[str]]:
    """Whether the levels have prompt lengths, turns, and the columns they take."""
    prompts = any(level["prompt_tokens"] for level in levels)
    turns = any(level["turn"] for level in levels)
    return prompts, turns, (["prompt tokens"] if prompts else []) + (["turn"] if turns else []) + ["streams"]


def results_table(results: Sequence[TargetLevel]) -> Table:
    table = Table(title="Medians over the rounds (greedy, streamed)")
    prompts, turns, level_columns = _level_columns([asdict(r.level) for r in results])
    prefill = ["prompt tok sent", "prefill tok/s ≈"] if prompts else []
    cached = any(result.summary()["cached_prompt_tokens"] is not None for result in results)
    for column in ["target", *level_columns, "tok/s total", "tok/s per stream", "req/s", "TTFT p50 ms",
                   "TTFT p95 ms", *prefill, *(["prompt tok cached"] if cached else []), "errors"]:
        table.add_column(column, justify="left" if column == "target" else "right")
    for result in _sorted(results):
        summary = result.summary()
        table.add_row(
            result.target,
            *_level_cells(asdict(result.level), prompts, turns),
            _number(summary["tokens_per_second"]),
            _number(summary["stream_tokens_per_second"]),
            _number(summary["requests_per_second"], 2),
            _number(summary["ttft_p50_ms"], 0),
            _number(summary["ttft_p95_ms"], 0),
            *([_number(summary["prompt_tokens"], 0), _number(summary["prefill_tokens_per_second"], 0)]
              if prompts else []),
            *([_number(summary["cached_prompt_tokens"], 0)] if cached else []),
            f"{summary['errors']}/{summary['requests']}",
        )
    return table


def ratios_table(rows: Sequence[dict]) -> Table:
    table = Table(title="Side by side, per round, median over the rounds")
    prompts, turns, level_columns = _level_columns(rows)
    for column in ["target", "against", *level_columns, "tok/s total ratio", "tok/s per stream ratio",
                   "TTFT p50 added ms", *(["prefill tok/s ratio"] if prompts else [])]:
        table.add_column(column, justify="left" if column in ("target", "against") else "right")
    for row in rows:
        table.add_row(
            row["target"],
            row["baseline"],
            *_level_cells(row, prompts, turns),
            _number(row["tokens_per_second_ratio"], 3),
            _number(row["stream_tokens_per_second_ratio"], 3),
            _number(row["ttft_p50_added_ms"], 1),
            *([_number(row["prefill_tokens_per_second_ratio"], 3)] if prompts else []),
        )
    return table


def plot(results: Sequence[TargetLevel], path: Path) -> None:
    """Aggregate tokens/s and TTFT p50 against concurrency, one line per target (and prompt length, and turn)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot

    def line(result: TargetLevel) -> tuple:
        return result.target, result.level.prompt_tokens, result.level.turn

    figure, (throughput, ttft) = pyplot.subplots(1, 2, figsize=(11, 4.5))
    for name, prompt_tokens, turn in dict.fromkeys(map(line, results)):
        mine = sorted((r for r in results if line(r) == (name, prompt_tokens, turn)),
                      key=lambda r: r.level.concurrency)
        label = ", ".join([name] + ([f"{prompt_tokens} tokens"] if prompt_tokens else [])
                          + ([f"turn {turn}"] if turn else []))
        levels = [r.level.concurrency for r in mine]
        throughput.plot(levels, [r.summary()["tokens_per_second"] for r in mine], marker="o", label=label)
        ttft.plot(levels, [r.summary()["ttft_p50_ms"] for r in mine], marker="o", label=label)
    levels = sorted({r.level.concurrency for r in results})
    for axes, label in ((throughput, "tokens/s, all streams"), (ttft, "time to first token, p50 (ms)")):
        axes.set_xscale("log", base=2)
        axes.set_xticks(levels, labels=[str(level) for level in levels])
        axes.set_xlabel("concurrent streams")
        axes.set_ylabel(label)
        axes.grid(True, alpha=0.3)
        axes.legend()
    throughput.set_ylim(bottom=0)
    ttft.set_ylim(bottom=0)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def write(out: TextIO, plan, targets: Iterable[tuple[str, str, str]], results: Sequence[TargetLevel],
          compared: Sequence[dict], *, as_json: bool) -> None:
    """A run's results on `out`: its JSON document (the plan, the targets as (name, kind, url), every
    result and the ratios), or the results table and, if any, the ratios table."""
    if as_json:
        document = {
            "plan": asdict(plan),
            "targets": [{"name": name, "kind": kind, "url": url} for name, kind, url in targets],
            "results": [result.as_dict() for result in results],
            "ratios": list(compared),
        }
        out.write(json.dumps(document, indent=2))
        return
    console = Console(file=out, width=120)
    console.print(results_table(results))
    if compared:
        console.print(ratios_table(compared))
