"""Benchmark results for people (a table, a plot) and for machines (JSON)."""

from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from benchmark.runner import TargetLevel


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def results_table(results: Sequence[TargetLevel]) -> Table:
    table = Table(title="Medians over the rounds (greedy, streamed)")
    for column in ("target", "streams", "tok/s total", "tok/s per stream", "req/s", "TTFT p50 ms",
                   "TTFT p95 ms", "errors"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for result in sorted(results, key=lambda r: (r.concurrency, r.target)):
        summary = result.summary()
        table.add_row(
            result.target,
            str(result.concurrency),
            _number(summary["tokens_per_second"]),
            _number(summary["stream_tokens_per_second"]),
            _number(summary["requests_per_second"], 2),
            _number(summary["ttft_p50_ms"], 0),
            _number(summary["ttft_p95_ms"], 0),
            f"{summary['errors']}/{summary['requests']}",
        )
    return table


def ratios_table(rows: Sequence[dict]) -> Table:
    table = Table(title="Side by side, per round, median over the rounds")
    for column in ("target", "against", "streams", "tok/s total ratio", "tok/s per stream ratio",
                   "TTFT p50 added ms"):
        table.add_column(column, justify="left" if column in ("target", "against") else "right")
    for row in rows:
        table.add_row(
            row["target"],
            row["baseline"],
            str(row["concurrency"]),
            _number(row["tokens_per_second_ratio"], 3),
            _number(row["stream_tokens_per_second_ratio"], 3),
            _number(row["ttft_p50_added_ms"], 1),
        )
    return table


def plot(results: Sequence[TargetLevel], path: Path) -> None:
    """Aggregate tokens/s and TTFT p50 against concurrency, one line per target."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot

    figure, (throughput, ttft) = pyplot.subplots(1, 2, figsize=(11, 4.5))
    for name in dict.fromkeys(r.target for r in results):
        mine = sorted((r for r in results if r.target == name), key=lambda r: r.concurrency)
        levels = [r.concurrency for r in mine]
        throughput.plot(levels, [r.summary()["tokens_per_second"] for r in mine], marker="o", label=name)
        ttft.plot(levels, [r.summary()["ttft_p50_ms"] for r in mine], marker="o", label=name)
    levels = sorted({r.concurrency for r in results})
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
