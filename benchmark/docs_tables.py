"""The tables of docs/performance.md, made from the benchmark's JSON, not typed by hand.

A table's place in a Markdown document is marked with the run it shows:

    <!-- bench-table: bench/worker-vs-direct.json -->
    ...the table, rewritten by `manage.py bench_docs`...
    <!-- /bench-table -->

The path is relative to the document. Each target's medians come first, then, for each
baseline the run compared with, the medians of the round-by-round ratios.
"""

import json
import re
from pathlib import Path

BLOCK = re.compile(r"(<!-- bench-table: (?P<run>\S+) -->\n)(?P<table>.*?)(<!-- /bench-table -->)", re.DOTALL)


def _milliseconds(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.1f}"


def _added(value: float) -> str:
    digits = 0 if abs(value) >= 100 else 1
    return f"{'+' if value >= 0 else '−'}{abs(value):.{digits}f} ms"


def markdown_table(run: dict) -> str:
    """One row per target and level: its medians, and its ratios to each baseline."""
    baselines = list(dict.fromkeys(row["baseline"] for row in run["ratios"]))
    compared = {(row["target"], row["baseline"], row["concurrency"]): row for row in run["ratios"]}
    header = ["target", "streams", "tok/s total", "TTFT p50 ms", "TTFT p95 ms"]
    for baseline in baselines:
        header += [f"tok/s ratio to {baseline}", f"TTFT p50 added to {baseline}"]
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for result in sorted(run["results"], key=lambda r: (r["concurrency"], r["target"] not in baselines, r["target"])):
        median = result["median"]
        cells = [
            result["target"],
            str(result["concurrency"]),
            f"{median['tokens_per_second']:.1f}",
            _milliseconds(median["ttft_p50_ms"]),
            _milliseconds(median["ttft_p95_ms"]),
        ]
        for baseline in baselines:
            row = compared.get((result["target"], baseline, result["concurrency"]))
            cells += [f"{row['tokens_per_second_ratio']:.2f}", _added(row["ttft_p50_added_ms"])] if row else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rewrite_tables(document: Path) -> str:
    """The document's text with each marked table made again from its run's JSON."""
    def table(match: re.Match) -> str:
        run = json.loads((document.parent / match["run"]).read_text())
        return match.group(1) + markdown_table(run) + match.group(4)

    return BLOCK.sub(table, document.read_text())
