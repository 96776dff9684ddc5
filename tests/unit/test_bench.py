"""The benchmark's arithmetic (levels, ratios, level statistics, the prefill rate), its conversations
(each turn resending the target's own replies), what its OpenAI targets send and read, its refusals of bad
options, and docs/performance.md's tables, made again from their runs' JSON (the benchmark against real
targets, and prompts made with the bundled models' tokenizers: tests/e2e/test_bench.py)."""

import asyncio
import contextlib
import http.server
import json
import threading

import pytest

from benchmark.docs_tables import markdown_table
from benchmark.prompts import FOLLOW_UPS, Prompt, PromptMaker
from benchmark.runner import Level, LevelStats, Plan, TargetLevel, percentile, ratios, run_benchmark, run_level
from benchmark.targets import OpenAIChatTarget, OpenAICompletionsTarget, RequestResult
from tests.support.word_tokenizer import word_tokenizer


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


class _EchoTarget:
    """Answers each prompt with a reply of its own ("reply 1", "reply 2"...), and keeps the prompts it was
    sent; after `delay` seconds divided by the number of the request: the first sent answers last."""

    name, kind, url = "echo", "echo", "-"

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.sent: list[Prompt] = []

    async def generate(self, prompt: Prompt, max_tokens: int) -> RequestResult:
        self.sent.append(prompt)
        number = len(self.sent)
        await asyncio.sleep(self.delay / number)
        return RequestResult(started=0.0, first_text_at=0.1, finished_at=0.2, tokens=2, text=f" reply {number}")


def test_a_later_turn_resends_the_target_s_own_replies_then_a_short_follow_up():
    maker = PromptMaker(word_tokenizer())
    target = _EchoTarget()
    plan = Plan(concurrency=(1,), requests=2, max_tokens=2, chat_turns=3, prompt_tokens=(16,))
    asyncio.run(run_benchmark([target], plan, maker))
    warmup, *sent = target.sent
    # One stream: each conversation through its three turns before the next one starts.
    for conversation, (turn1, turn2, turn3) in enumerate((sent[0:3], sent[3:6])):
        assert turn1.tokens == 16 + maker.count("User:\nAssistant:")
        reply1, reply2 = f" reply {2 + 3 * conversation}", f" reply {3 + 3 * conversation}"  # after the warm-up's
        assert turn2.chat == (("user", turn1.chat[0][1]), ("assistant", reply1), ("user", FOLLOW_UPS[0]))
        assert turn2.text == f"{turn1.text}{reply1}\nUser: {FOLLOW_UPS[0]}\nAssistant:"
        assert turn3.chat[:3] == turn2.chat and turn3.chat[3:] == (("assistant", reply2), ("user", FOLLOW_UPS[1]))
        assert turn3.text.startswith(turn2.text) and turn3.tokens == maker.count(turn3.text)
        assert turn2.messages[1] == {"role": "assistant", "content": reply1}
    assert sent[0].chat[0] != sent[3].chat[0]
    assert warmup.messages == [{"role": "user", "content": warmup.text}]  # an independent prompt


def test_conversations_give_each_turn_its_statistics():
    target = _EchoTarget()
    plan = Plan(concurrency=(2,), requests=3, max_tokens=2, chat_turns=2, prompt_tokens=(8,))
    results = asyncio.run(run_benchmark([target], plan, PromptMaker(word_tokenizer())))
    assert [(result.level.turn, result.rounds[0].requests) for result in results] == [(1, 3), (2, 3)]
    first, second = (result.rounds[0] for result in results)
    assert second.prompt_tokens > first.prompt_tokens  # the history, resent
    assert first.seconds == second.seconds == pytest.approx(3 * 0.2 / 2)  # three requests of 0.2 s, two streams


def test_a_level_gives_back_its_results_in_the_order_of_its_prompts():
    target = _EchoTarget(delay=0.04)
    prompts = [Prompt(f"prompt {i}", None) for i in range(4)]
    stats, results = asyncio.run(run_level(target, 4, prompts, 2, on_done=lambda: None))
    assert [result.text for result in results] == [" reply 1", " reply 2", " reply 3", " reply 4"]
    assert [prompt.text for prompt in target.sent] == [prompt.text for prompt in prompts]
    assert stats.requests == 4 and stats.errors == 0


class _OpenAIStub(http.server.ThreadingHTTPServer):
    """Streams a fixed answer to `/v1/chat/completions` or `/v1/completions`, in each one's chunks, and
    keeps the bodies it was sent; `usage` is its usage chunk's."""

    def __init__(self, usage: dict):
        self.bodies: list[tuple[str, dict]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                stub.bodies.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
                chat = self.path == "/v1/chat/completions"
                chunks = [{"choices": [{"delta": {"content": text}} if chat else {"text": text}]}
                          for text in ("Sure", ", briefly.")]
                events = [json.dumps(chunk) for chunk in chunks + [{"choices": [], "usage": usage}]] + ["[DONE]"]
                body = "".join(f"data: {event}\n\n" for event in events).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


# The usage of this service's second turn that hit its prefix cache
CACHE_HIT = {"prompt_tokens": 549, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 512}}


@contextlib.contextmanager
def _openai_stub(usage: dict):
    stub = _OpenAIStub(usage)
    try:
        yield stub
    finally:
        stub.shutdown()
        stub.server_close()


async def _generate(target, prompt: Prompt) -> RequestResult:
    try:
        return await target.generate(prompt, 8)
    finally:
        await target.aclose()


def test_the_chat_target_sends_the_messages_and_reads_the_server_s_prompt_and_cached_tokens():
    chat = (("user", "Tell me about the sea."), ("assistant", " It is big."), ("user", FOLLOW_UPS[0]))
    prompt = Prompt("User: Tell me about the sea.\nAssistant: It is big.\n...", 20, chat=chat)
    with _openai_stub(CACHE_HIT) as stub:
        result = asyncio.run(_generate(OpenAIChatTarget("chat", stub.url, model="m"), prompt))
    ((path, body),) = stub.bodies
    assert path == "/v1/chat/completions"
    assert body == {
        "model": "m", "messages": [{"role": role, "content": content} for role, content in chat], "max_tokens": 8,
        "temperature": 0, "stream": True, "stream_options": {"include_usage": True},
    }
    assert (result.error, result.text, result.tokens) == (None, "Sure, briefly.", 3)
    assert (result.prompt_tokens, result.cached_prompt_tokens) == (549, 512)


def test_the_completions_target_sends_the_text_and_keeps_its_own_count_of_the_prompt():
    prompt = Prompt("The capital of France is", 5, chat=(("user", "not sent"),))
    with _openai_stub(CACHE_HIT) as stub:
        result = asyncio.run(_generate(OpenAICompletionsTarget("raw", stub.url, model="m"), prompt))
    ((path, body),) = stub.bodies
    assert (path, body["prompt"], "messages" in body) == ("/v1/completions", "The capital of France is", False)
    assert (result.text, result.tokens, result.cached_prompt_tokens) == ("Sure, briefly.", 3, 512)
    assert result.prompt_tokens is None  # BOS on top of the text's count: left out, as the raw targets leave it


def test_a_server_that_does_not_report_cached_tokens_reports_none():
    with _openai_stub({"prompt_tokens": 30, "completion_tokens": 3}) as stub:  # as llama-server may answer
        result = asyncio.run(_generate(OpenAIChatTarget("llama", stub.url, model="m"), Prompt("Hi", 1)))
    assert (result.prompt_tokens, result.cached_prompt_tokens) == (30, None)
    assert LevelStats.of([result], seconds=1.0, prompt_tokens=[1]).cached_prompt_tokens is None


def test_level_stats_take_the_server_s_prompt_count_and_the_cached_tokens_where_reported():
    cached = RequestResult(started=0.0, first_text_at=0.1, finished_at=1.0, tokens=4, prompt_tokens=550,
                           cached_prompt_tokens=512)
    missed = RequestResult(started=0.0, first_text_at=0.5, finished_at=1.0, tokens=4, prompt_tokens=550,
                           cached_prompt_tokens=0)
    uncounted = RequestResult(started=0.0, first_text_at=1.0, finished_at=2.0, tokens=4, cached_prompt_tokens=512)
    stats = LevelStats.of([cached, missed, uncounted], seconds=2.0, prompt_tokens=[500, 500, 500])
    assert stats.prompt_tokens == 550  # of 550, 550 and the tokenizer's 500
    assert stats.prefill_tokens_per_second == pytest.approx(1100)  # of 5500, 1100 and 500
    assert stats.cached_prompt_tokens == 512


def test_a_table_shows_the_cached_prompt_tokens_only_when_a_server_reported_them():
    def result(target, cached):
        median = {"tokens_per_second": 10.0, "ttft_p50_ms": 120.0, "ttft_p95_ms": 130.0, "prompt_tokens": 549,
                  "prefill_tokens_per_second": 4575.0, "cached_prompt_tokens": cached}
        return {"target": target, "concurrency": 1, "prompt_tokens": 512, "turn": 2, "median": median}

    run = {"results": [result("service", 512), result("llama-server", None)], "ratios": []}
    assert markdown_table(run).splitlines() == [
        "| target | turn | prompt tokens | cached prompt tokens | streams | tok/s total | TTFT p50 ms | TTFT p95 ms "
        "| prefill tok/s ≈ |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| llama-server | 2 | 549 |  | 1 | 10.0 | 120.0 | 130.0 | 4575 |",
        "| service | 2 | 549 | 512 | 1 | 10.0 | 120.0 | 130.0 | 4575 |",
    ]
    unreported = {"results": [result("llama-server", None)], "ratios": []}
    assert "cached" not in markdown_table(unreported)
