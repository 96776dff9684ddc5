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


def _level(row: dict) -> tuple:
    """A row's level; runs made before prompt lengths and turns existed have neither."""
    return row.get("prompt_tokens") or 0, row["concurrency"], row.get("turn") or 0


def markdown_table(run: dict) -> str:
    """One row per target and level: its medians, and its ratios to each baseline.

    A run with prompts of exact lengths adds the tokens of the prompts sent and the prefill
    rate (prompt tokens / TTFT); a run of conversations, the turn; a run whose servers reported
    the prompt tokens their prefix cache gave, those (empty for a target that did not).
    """
    baselines = list(dict.fromkeys(row["baseline"] for row in run["ratios"]))
    compared = {(row["target"], row["baseline"], _level(row)): row for row in run["ratios"]}
    prompts = any(result.get("prompt_tokens") for result in run["results"])
    turns = any(result.get("turn") for result in run["results"])
    cached = any(result["median"].get("cached_prompt_tokens") is not None for result in run["results"])
    header = ["target"] + (["turn"] if turns else []) + (["prompt tokens"] if prompts else [])
    header += ["cached prompt tokens"] if cached else []
    header += ["streams", "tok/s total", "TTFT p50 ms", "TTFT p95 ms"] + (["prefill tok/s ≈"] if prompts else [])
    for baseline in baselines:
        header += [f"tok/s ratio to {baseline}", f"TTFT p50 added to {baseline}"]
        header += [f"prefill ratio to {baseline}"] if prompts else []
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for result in sorted(run["results"], key=lambda r: (_level(r), r["target"] not in baselines, r["target"])):
        median = result["median"]
        cells = [result["target"]]
        if turns:
            cells.append(str(result["turn"]))
        if prompts:
            cells.append(f"{median['prompt_tokens']:.0f}")
        if cached:
            reported = median.get("cached_prompt_tokens")
            cells.append("" if reported is None else f"{reported:.0f}")
        cells += [
            str(result["concurrency"]),
            f"{median['tokens_per_second']:.1f}",
            _milliseconds(median["ttft_p50_ms"]),
            _milliseconds(median["ttft_p95_ms"]),
        ]
        if prompts:
            cells.append(f"{median['prefill_tokens_per_second']:.0f}")
        for baseline in baselines:
            row = compared.get((result["target"], baseline, _level(result)))
            cells += [f"{row['tokens_per_second_ratio']:.2f}", _added(row["ttft_p50_added_ms"])] if row else ["", ""]
            if prompts:
                cells.append(f"{row['prefill_tokens_per_second_ratio']:.2f}" if row else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rewrite_tables(document: Path) -> str:
    """The document's text with each marked table made again from its run's JSON."""
    def table(match: re.Match) -> str:
        run = json.loads((document.parent / match["run"]).read_text())
        return match.group(1) + markdown_table(run) + match.group(4)

    return BLOCK.sub(table, document.read_text())
