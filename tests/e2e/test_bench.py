"""The benchmark command runs against the real server, the engine in-process and in a worker, and its
output is well formed; its prompts of exact lengths, made with the bundled models' tokenizers. No
assertion on speed: timings on a shared machine mean nothing here."""

import asyncio
import io
import json
import re
import subprocess

import pytest
from django.conf import settings
from rich.console import Console
from tokenizers import Tokenizer

from benchmark import report
from benchmark.prompts import FOLLOW_UPS, Conversation, Prompt, PromptMaker, service_tokenizer_path
from benchmark.runner import Level, Plan, Workload, ratios, run_benchmark
from benchmark.targets import RequestResult
from catalog.engine_settings import EngineConfig
from generation.engine import model_files


def test_bench_against_the_live_server_and_the_engine_in_process_and_in_a_worker(live_server, tmp_path):
    plot = tmp_path / "bench.png"
    output = live_server.manage(
        "bench",
        "--openai", f"service={live_server.url}",
        "--native", f"native={live_server.url}",
        "--direct",
        "--worker",
        "--model", "HuggingFaceTB/SmolLM2-135M-Instruct",  # the engine loaded twice more, in 1.5 s (Gemma: 8 s)
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


@pytest.fixture(scope="module", params=[model_files.GEMMA_PACKAGE, model_files.SMOLLM2_PACKAGE])
def bundled_entry(request):
    return EngineConfig(model_id=request.param, source="bundled", location=request.param)


@pytest.fixture(scope="module")
def tokenizer(bundled_entry):
    """The tokenizer that the service loads for a bundled model's catalog entry."""
    return Tokenizer.from_file(str(service_tokenizer_path(bundled_entry, settings.LLM_MODEL_CACHE_DIR)))


def _tokens(tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


@pytest.mark.parametrize("length", [1, 2, 3, 17, 64, 256, 2048])
def test_a_prompt_has_exactly_the_tokens_asked_for(tokenizer, length):
    maker = PromptMaker(tokenizer, seed=length)
    prompts = [maker.exact(length) for _ in range(5)]
    assert [_tokens(tokenizer, prompt.text) for prompt in prompts] == [length] * 5
    assert [prompt.tokens for prompt in prompts] == [length] * 5
    assert len({prompt.text for prompt in prompts}) == 5


def test_prompts_are_never_made_twice_and_follow_their_seed(tokenizer):
    maker = PromptMaker(tokenizer, seed=7)
    one_token = [maker.exact(1).text for _ in range(300)]  # a vocabulary's words, without a repeat
    assert len(set(one_token)) == 300
    again = PromptMaker(tokenizer, seed=7)
    assert [again.exact(1).text for _ in range(300)] == one_token
    assert PromptMaker(tokenizer, seed=8).exact(64).text != PromptMaker(tokenizer, seed=7).exact(64).text


def test_the_service_adds_its_bos_token_on_top_of_the_count(bundled_entry, tokenizer):
    cache_dir = settings.LLM_MODEL_CACHE_DIR
    gguf = model_files.local_gguf(source="bundled", location=bundled_entry.location, filename="", cache_dir=cache_dir)
    bos = model_files.prepare_gguf(gguf, cache_dir).bos_token
    prompt = PromptMaker(tokenizer).exact(100)
    assert _tokens(tokenizer, bos + prompt.text) == 101


def test_a_conversation_resends_its_history_at_every_turn(tokenizer):
    maker = PromptMaker(tokenizer, seed=3)
    conversation = Conversation(maker, first_message_tokens=32)
    first = conversation.prompt()
    conversation.reply(" The sea is wide.")
    second = conversation.prompt()
    conversation.reply("Yes.")  # a chat's reply, without the continuation's leading space
    third = conversation.prompt()
    assert second.text == f"{first.text} The sea is wide.\nUser: {FOLLOW_UPS[0]}\nAssistant:"
    assert third.text == f"{second.text} Yes.\nUser: {FOLLOW_UPS[1]}\nAssistant:"
    assert [p.tokens for p in (first, second, third)] == [_tokens(tokenizer, p.text) for p in (first, second, third)]
    assert first.tokens >= 32


def test_the_workload_never_sends_a_prompt_twice_except_a_conversation_s_history(tokenizer):
    plan = Plan(concurrency=(2,), requests=2, rounds=2, prompt_tokens=(16,), chat_turns=2)
    workload = Workload(plan, PromptMaker(tokenizer))
    conversations = [workload.conversations(Level(2, 16, 1)) for _ in range(4)]  # two targets, two rounds
    firsts = [conversation.prompt() for each in conversations for conversation in each]
    assert len({prompt.text for prompt in firsts}) == 8
    for index, conversation in enumerate(c for each in conversations for c in each):
        conversation.reply(f" reply {index}")
        assert conversation.prompt().text.startswith(firsts[index].text + f" reply {index}")
    independent = Workload(Plan(concurrency=(1,), requests=3, prompt_tokens=(8,)), PromptMaker(tokenizer))
    texts = [p.text for _ in (0, 1) for p in independent.prompts(Level(1, 8))]
    assert len(set(texts)) == 6 and all(_tokens(tokenizer, text) == 8 for text in texts)
    with pytest.raises(ValueError, match="tokenizer"):
        Workload(plan, None)


class _FakeTarget:
    """Answers at once, its first token after 1 ms per word of the prompt (times of its own clock)."""

    kind = "fake"
    url = "-"

    def __init__(self, name: str, ms_per_word: float):
        self.name = name
        self.ms_per_word = ms_per_word

    async def generate(self, prompt: Prompt, max_tokens: int) -> RequestResult:
        ttft = len(prompt.text.split()) * self.ms_per_word / 1000
        return RequestResult(started=0.0, first_text_at=ttft, finished_at=ttft + 0.1, tokens=max_tokens)


def test_results_and_ratios_are_keyed_by_prompt_length_and_turn(tokenizer):
    targets = [_FakeTarget("slow", 2.0), _FakeTarget("fast", 1.0)]
    plan = Plan(concurrency=(1,), requests=2, max_tokens=3, prompt_tokens=(16, 64), chat_turns=2)
    results = asyncio.run(run_benchmark(targets, plan, PromptMaker(tokenizer)))
    assert {(r.target, r.level) for r in results} == {
        (name, Level(1, n, turn)) for name in ("slow", "fast") for n in (16, 64) for turn in (1, 2)
    }
    for result in results:
        (stats,) = result.rounds
        assert stats.requests == 2 and stats.errors == 0
        assert stats.prompt_tokens >= result.level.prompt_tokens
        assert stats.prefill_tokens_per_second == pytest.approx(
            stats.prompt_tokens / stats.ttft_p50_ms * 1000, rel=0.2
        )
    rows = ratios(results, "fast")
    assert {(row["target"], row["prompt_tokens"], row["turn"], row["concurrency"]) for row in rows} == {
        ("slow", n, turn, 1) for n in (16, 64) for turn in (1, 2)
    }
    for row in rows:  # the slow target takes twice as long per word, whatever the level
        assert row["prefill_tokens_per_second_ratio"] == pytest.approx(0.5, rel=0.1)
        assert row["ttft_p50_added_ms"] > 0
    console = Console(file=io.StringIO(), width=200)
    console.print(report.results_table(results), report.ratios_table(rows))
    tables = console.file.getvalue()
    assert "prefill tok/s ≈" in tables and "prefill tok/s ratio" in tables
    assert re.search(r"│ fast +│ +64 │ +2 │ +1 │", tables)  # target, prompt tokens, turn, streams
    assert re.search(r"│ slow +│ fast +│ +16 │ +1 │ +1 │", tables)


def test_bench_with_prompts_of_exact_lengths_against_the_live_server(live_server):
    output = live_server.manage(
        "bench", "--openai", f"service={live_server.url}", "--native", f"native={live_server.url}",
        "--prompt-tokens", "16", "64", "--concurrency", "1", "--requests", "1", "--max-tokens", "2",
        "--baseline", "native", "--json",
    )
    document = json.loads(output)
    assert document["plan"]["prompt_tokens"] == [16, 64]
    assert {(r["target"], r["prompt_tokens"], r["turn"]) for r in document["results"]} == {
        (name, n, None) for name in ("service", "native") for n in (16, 64)
    }
    for result in document["results"]:
        (stats,) = result["rounds"]
        assert stats["errors"] == 0 and stats["prompt_tokens"] == result["prompt_tokens"], result
        prefill = stats["prompt_tokens"] / stats["ttft_p50_ms"] * 1000  # one request: its own rate
        assert stats["prefill_tokens_per_second"] == pytest.approx(prefill)
    assert {(row["target"], row["prompt_tokens"]) for row in document["ratios"]} == {("service", 16), ("service", 64)}
    assert all(row["prefill_tokens_per_second_ratio"] > 0 for row in document["ratios"])


def test_bench_with_conversations_against_the_live_server(live_server):
    output = live_server.manage(
        "bench", "--openai", f"service={live_server.url}", "--openai-chat", f"chat={live_server.url}",
        "--chat-turns", "2", "--prompt-tokens", "16", "--concurrency", "1", "--requests", "1", "--max-tokens", "2",
        "--json",
    )
    document = json.loads(output)
    assert document["plan"]["chat_turns"] == 2
    assert {(t["name"], t["kind"]) for t in document["targets"]} == {("service", "openai"), ("chat", "openai-chat")}
    for name in ("service", "chat"):
        first, second = sorted((r for r in document["results"] if r["target"] == name), key=lambda r: r["turn"])
        assert (first["turn"], second["turn"], first["prompt_tokens"], second["prompt_tokens"]) == (1, 2, 16, 16)
        (turn1,), (turn2,) = first["rounds"], second["rounds"]
        assert turn1["errors"] == turn2["errors"] == 0
        # The second turn: the first, its reply (2 tokens at most) and a short follow-up
        assert 16 < turn1["prompt_tokens"] < turn2["prompt_tokens"] < turn1["prompt_tokens"] + 40
        assert turn1["prefill_tokens_per_second"] > 0 and turn2["prefill_tokens_per_second"] > 0
        # The service reports the tokens its prefix cache gave, through either endpoint
        assert turn1["cached_prompt_tokens"] is not None and turn2["cached_prompt_tokens"] is not None
