"""Running the benchmark: concurrency levels, targets alternated in rounds, statistics.

Targets take turns level by level, and the order of the targets rotates from one round
to the next, so that every target sees the same machine load on average: on a shared
machine the numbers that mean something are the ratios between targets, measured side by
side, and their medians over the rounds.
"""

import asyncio
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from benchmark.targets import RequestResult

# Continuations of varied topics and lengths: the same list, in the same order, for every target.
PROMPTS = (
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "The three laws of thermodynamics state that",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "A good recipe for bread needs flour, water,",
    "The history of the Roman Empire begins",
    "In machine learning, a neural network is",
    "Dear hiring manager, I am writing to apply for",
    "The quick brown fox jumps over the lazy dog. Then",
    "Photosynthesis is the process by which plants",
    "1, 1, 2, 3, 5, 8, 13,",
    "The most important rule of writing clear code is",
    "Mount Everest, the highest mountain on Earth,",
    "To make a cup of tea, first",
    "The stock market fell sharply on Monday after",
    "Water boils at 100 degrees Celsius, but at high altitude",
)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile, linear between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class LevelStats:
    """One target at one concurrency level in one round."""

    requests: int
    errors: int
    seconds: float
    tokens: int
    tokens_per_second: float  # all streams together
    stream_tokens_per_second: float | None  # median over the streams, after their first token
    requests_per_second: float
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None

    @classmethod
    def of(cls, results: Sequence[RequestResult], seconds: float) -> "LevelStats":
        done = [r for r in results if r.error is None]
        ttfts = [r.ttft for r in done if r.ttft is not None]
        rates = [r.decode_tokens_per_second for r in done if r.decode_tokens_per_second is not None]
        tokens = sum(r.tokens for r in done)
        return cls(
            requests=len(results),
            errors=len(results) - len(done),
            seconds=seconds,
            tokens=tokens,
            tokens_per_second=tokens / seconds,
            stream_tokens_per_second=statistics.median(rates) if rates else None,
            requests_per_second=len(done) / seconds,
            ttft_p50_ms=percentile(ttfts, 0.5) * 1000 if ttfts else None,
            ttft_p95_ms=percentile(ttfts, 0.95) * 1000 if ttfts else None,
        )


METRICS = (
    "tokens_per_second",
    "stream_tokens_per_second",
    "requests_per_second",
    "ttft_p50_ms",
    "ttft_p95_ms",
)


def median_of(rounds: Sequence[LevelStats], metric: str) -> float | None:
    values = [getattr(stats, metric) for stats in rounds if getattr(stats, metric) is not None]
    return statistics.median(values) if values else None


@dataclass
class TargetLevel:
    """Every round of one target at one level, and their medians."""

    target: str
    kind: str
    url: str
    concurrency: int
    rounds: list[LevelStats] = field(default_factory=list)

    def summary(self) -> dict:
        return {metric: median_of(self.rounds, metric) for metric in METRICS} | {
            "errors": sum(stats.errors for stats in self.rounds),
            "requests": sum(stats.requests for stats in self.rounds),
        }

    def as_dict(self) -> dict:
        return {
            "target": self.target,
            "kind": self.kind,
            "url": self.url,
            "concurrency": self.concurrency,
            "median": self.summary(),
            "rounds": [asdict(stats) for stats in self.rounds],
        }


def ratios(results: Sequence[TargetLevel], baseline: str) -> list[dict]:
    """Each target against `baseline`, round by round at the same level, then the median.

    Throughputs as ratios (target / baseline), time to first token as a difference in ms.
    """
    by_key = {(r.target, r.concurrency): r for r in results}
    rows = []
    for result in results:
        base = by_key.get((baseline, result.concurrency))
        if result.target == baseline or base is None:
            continue
        pairs = list(zip(result.rounds, base.rounds))

        def median_over_rounds(compare: Callable, metric: str) -> float | None:
            values = [
                compare(getattr(mine, metric), getattr(theirs, metric))
                for mine, theirs in pairs
                if getattr(mine, metric) and getattr(theirs, metric)
            ]
            return statistics.median(values) if values else None

        rows.append(
            {
                "target": result.target,
                "baseline": baseline,
                "concurrency": result.concurrency,
                "tokens_per_second_ratio": median_over_rounds(lambda a, b: a / b, "tokens_per_second"),
                "stream_tokens_per_second_ratio": median_over_rounds(lambda a, b: a / b, "stream_tokens_per_second"),
                "ttft_p50_added_ms": median_over_rounds(lambda a, b: a - b, "ttft_p50_ms"),
            }
        )
    return rows


async def run_level(target, concurrency: int, prompts: Sequence[str], max_tokens: int, on_done: Callable) -> LevelStats:
    """`len(prompts)` requests through `concurrency` streams, each stream taking the next prompt."""
    queue: asyncio.Queue = asyncio.Queue()
    for prompt in prompts:
        queue.put_nowait(prompt)
    results: list[RequestResult] = []

    async def stream() -> None:
        while not queue.empty():
            result = await target.generate(queue.get_nowait(), max_tokens)
            results.append(result)
            on_done()

    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(stream() for _ in range(concurrency)))
    return LevelStats.of(results, loop.time() - started)


class TargetFailed(Exception):
    """A target did not answer its warm-up request: nothing worth measuring."""


@dataclass(frozen=True)
class Plan:
    concurrency: tuple[int, ...] = (1, 4, 16)
    requests: int = 4  # per level at least; a level sends at least one request per stream
    max_tokens: int = 64
    rounds: int = 1
    warmup_tokens: int = 8

    def prompts(self, concurrency: int) -> list[str]:
        count = max(self.requests, concurrency)
        return [PROMPTS[i % len(PROMPTS)] for i in range(count)]

    def total_requests(self, targets: int) -> int:
        return self.rounds * targets * sum(len(self.prompts(c)) for c in self.concurrency)


async def run_benchmark(targets: Sequence, plan: Plan, on_done: Callable = lambda: None) -> list[TargetLevel]:
    results = {
        (t.name, c): TargetLevel(target=t.name, kind=t.kind, url=t.url, concurrency=c)
        for t in targets
        for c in plan.concurrency
    }
    for target in targets:  # loads lazily-started engines and fills caches outside the measurements
        warm = await target.generate(PROMPTS[0], plan.warmup_tokens)
        if warm.error:
            raise TargetFailed(f"{target.name} ({target.url}) failed its warm-up request: {warm.error}")
    for round_index in range(plan.rounds):
        shift = round_index % len(targets)
        order = list(targets[shift:]) + list(targets[:shift])
        for concurrency in plan.concurrency:
            for target in order:
                stats = await run_level(target, concurrency, plan.prompts(concurrency), plan.max_tokens, on_done)
                results[(target.name, concurrency)].rounds.append(stats)
    return list(results.values())
