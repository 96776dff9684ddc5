"""Running the benchmark: levels, targets alternated in rounds, statistics.

A level is a number of concurrent streams, with prompts of one kind: the short fixed
continuations, prompts of an exact token length, or the turn k of conversations that
resend their history with the target's own replies. A stream carries each conversation it
takes through all its turns before the next, as a user does: the prefix cache then sees a
turn soon after the one it extends. Targets take turns level by level, and the order of the targets
rotates from one round to the next, so that every target sees the same machine load on
average: on a shared machine the numbers that mean something are the ratios between
targets, measured side by side, and their medians over the rounds.
"""

import asyncio
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

from benchmark.prompts import Conversation, Prompt, PromptMaker, short_prompts
from benchmark.targets import RequestResult

# The length of a conversation's first user message, unless --prompt-tokens says otherwise.
CHAT_MESSAGE_TOKENS = 64


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile, linear between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Level:
    """What a round of one target measures at once."""

    concurrency: int
    prompt_tokens: int | None = None  # None: the short prompts; in a conversation, its first message's
    turn: int | None = None  # the turn of the conversations (from 1); None: independent prompts


@dataclass(frozen=True)
class LevelStats:
    """One target at one level in one round."""

    requests: int
    errors: int
    seconds: float
    tokens: int
    tokens_per_second: float  # all streams together
    stream_tokens_per_second: float | None  # median over the streams, after their first token
    requests_per_second: float
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    prompt_tokens: float | None = None  # median over the prompts sent, when counted
    # Median over the requests of prompt tokens / TTFT: approximate, as TTFT also holds the
    # request's way in and the first decode step (and, with several streams, the waits).
    prefill_tokens_per_second: float | None = None
    cached_prompt_tokens: float | None = None  # median over the answers whose server reported them

    @classmethod
    def of(cls, results: Sequence[RequestResult], seconds: float,
           prompt_tokens: Sequence[int | None] = ()) -> "LevelStats":
        """`prompt_tokens`: those of each request's prompt, in the order of `results` (when counted);
        the server's own count replaces it where a result carries one."""
        done = [r for r in results if r.error is None]
        ttfts = [r.ttft for r in done if r.ttft is not None]
        rates = [r.decode_tokens_per_second for r in done if r.decode_tokens_per_second is not None]
        counts = zip(results, prompt_tokens or [None] * len(results), strict=True)
        sent = [ours if r.prompt_tokens is None else r.prompt_tokens for r, ours in counts]
        counted = [n for n in sent if n is not None]
        prefill = [n / r.ttft for r, n in zip(results, sent) if r.error is None and r.ttft and n]
        cached = [r.cached_prompt_tokens for r in done if r.cached_prompt_tokens is not None]
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
            prompt_tokens=statistics.median(counted) if counted else None,
            prefill_tokens_per_second=statistics.median(prefill) if prefill else None,
            cached_prompt_tokens=statistics.median(cached) if cached else None,
        )


METRICS = (
    "tokens_per_second",
    "stream_tokens_per_second",
    "requests_per_second",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "prompt_tokens",
    "prefill_tokens_per_second",
    "cached_prompt_tokens",
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
    level: Level
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
            **asdict(self.level),
            "median": self.summary(),
            "rounds": [asdict(stats) for stats in self.rounds],
        }


def ratios(results: Sequence[TargetLevel], baseline: str) -> list[dict]:
    """Each target against `baseline`, round by round at the same level, then the median.

    Throughputs as ratios (target / baseline), time to first token as a difference in ms.
    """
    by_key = {(r.target, r.level): r for r in results}
    rows = []
    for result in results:
        base = by_key.get((baseline, result.level))
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
                **asdict(result.level),
                "tokens_per_second_ratio": median_over_rounds(lambda a, b: a / b, "tokens_per_second"),
                "stream_tokens_per_second_ratio": median_over_rounds(lambda a, b: a / b, "stream_tokens_per_second"),
                "ttft_p50_added_ms": median_over_rounds(lambda a, b: a - b, "ttft_p50_ms"),
                "prefill_tokens_per_second_ratio": median_over_rounds(
                    lambda a, b: a / b, "prefill_tokens_per_second"
                ),
            }
        )
    return rows


async def run_level(target, concurrency: int, prompts: Sequence[Prompt], max_tokens: int,
                    on_done: Callable) -> tuple[LevelStats, list[RequestResult]]:
    """`len(prompts)` requests through `concurrency` streams, each stream taking the next prompt:
    their statistics, and each prompt's result in the order of `prompts`."""
    results: list[RequestResult | None] = [None] * len(prompts)

    async def one(index: int) -> None:
        results[index] = await target.generate(prompts[index], max_tokens)
        on_done()

    seconds = await _through_streams(concurrency, len(prompts), one)
    stats = LevelStats.of(results, seconds, [prompt.tokens for prompt in prompts])
    return stats, results


async def run_conversations(target, concurrency: int, conversations: Sequence[Conversation], turns: int,
                            max_tokens: int, on_done: Callable) -> list[LevelStats]:
    """Each conversation through its `turns` turns, `concurrency` conversations at once: the
    statistics of each turn (from 1), over the conversations."""
    sent: list[list[Prompt]] = [[] for _ in range(turns)]
    answers: list[list[RequestResult]] = [[] for _ in range(turns)]

    async def one(index: int) -> None:
        conversation = conversations[index]
        for turn in range(turns):
            prompt = conversation.prompt()
            result = await target.generate(prompt, max_tokens)
            conversation.reply(result.text)
            sent[turn].append(prompt)
            answers[turn].append(result)
            on_done()

    await _through_streams(concurrency, len(conversations), one)
    # The turns interleave, so a turn's time is its streams' busy time: its requests' durations
    # over the number of streams.
    return [
        LevelStats.of(results, sum(r.finished_at - r.started for r in results) / concurrency,
                      [prompt.tokens for prompt in prompts])
        for prompts, results in zip(sent, answers)
    ]


async def _through_streams(concurrency: int, count: int, work: Callable) -> float:
    """`work(index)` for each index below `count`, `concurrency` at a time; the seconds it took."""
    queue: asyncio.Queue = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    async def stream() -> None:
        while not queue.empty():
            await work(queue.get_nowait())

    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(stream() for _ in range(concurrency)))
    return loop.time() - started


class TargetFailed(Exception):
    """A target did not answer its warm-up request: nothing worth measuring."""


@dataclass(frozen=True)
class Plan:
    concurrency: tuple[int, ...] = (1, 4, 16)
    requests: int = 4  # per level at least (conversations, with chat_turns); at least one per stream
    max_tokens: int = 64
    rounds: int = 1
    warmup_tokens: int = 8
    prompt_tokens: tuple[int, ...] = ()  # exact prompt lengths; none: the short prompts
    chat_turns: int = 0  # turns per conversation; 0: independent prompts
    seed: int = 0  # of the random words of exact-length prompts

    def levels(self) -> list[Level]:
        lengths = self.prompt_tokens or ((CHAT_MESSAGE_TOKENS,) if self.chat_turns else (None,))
        turns = range(1, self.chat_turns + 1) if self.chat_turns else (None,)
        return [Level(c, n, turn) for n in lengths for c in self.concurrency for turn in turns]

    def counts_tokens(self) -> bool:
        """Whether the plan needs the model's tokenizer."""
        return bool(self.prompt_tokens or self.chat_turns)

    def requests_at(self, level: Level) -> int:
        return max(self.requests, level.concurrency)

    def total_requests(self, targets: int) -> int:
        return self.rounds * targets * sum(self.requests_at(level) for level in self.levels())


class Workload:
    """What each level sends: independent prompts, or new conversations (their later turns come
    from the answers, `Conversation.reply`). With a PromptMaker nothing is made twice in a run."""

    def __init__(self, plan: Plan, maker: PromptMaker | None):
        if plan.counts_tokens() and maker is None:
            raise ValueError("prompts of an exact length need the model's tokenizer")
        self._plan = plan
        self._maker = maker

    def prompts(self, level: Level) -> list[Prompt]:
        count = self._plan.requests_at(level)
        if level.prompt_tokens is None:
            return short_prompts(count)
        return [self._maker.exact(level.prompt_tokens) for _ in range(count)]

    def conversations(self, level: Level) -> list[Conversation]:
        """New conversations for a level's first turn, each opening with a message of `level.prompt_tokens`."""
        return [
            Conversation(self._maker, first_message_tokens=level.prompt_tokens)
            for _ in range(self._plan.requests_at(level))
        ]


async def run_benchmark(targets: Sequence, plan: Plan, maker: PromptMaker | None = None,
                        on_done: Callable = lambda: None) -> list[TargetLevel]:
    workload = Workload(plan, maker)
    results = {
        (t.name, level): TargetLevel(target=t.name, kind=t.kind, url=t.url, level=level)
        for t in targets
        for level in plan.levels()
    }
    (warmup,) = short_prompts(1)
    for target in targets:  # loads lazily-started engines and fills caches outside the measurements
        warm = await target.generate(warmup, plan.warmup_tokens)
        if warm.error:
            raise TargetFailed(f"{target.name} ({target.url}) failed its warm-up request: {warm.error}")
    for round_index in range(plan.rounds):
        shift = round_index % len(targets)
        order = list(targets[shift:]) + list(targets[:shift])
        for level in plan.levels():
            if level.turn not in (None, 1):
                continue  # run with its conversations' first turn
            for target in order:
                if level.turn is None:
                    stats, _ = await run_level(target, level.concurrency, workload.prompts(level), plan.max_tokens,
                                               on_done)
                    results[(target.name, level)].rounds.append(stats)
                    continue
                per_turn = await run_conversations(target, level.concurrency, workload.conversations(level),
                                                   plan.chat_turns, plan.max_tokens, on_done)
                for turn, stats in enumerate(per_turn, start=1):
                    results[(target.name, replace(level, turn=turn))].rounds.append(stats)
    return list(results.values())
