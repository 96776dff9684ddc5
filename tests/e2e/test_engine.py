"""The engine layer with the real bundled model: each workaround of ENGINE_NOTES.md is
exercised here by a test that fails without it, through the engine cache and its worker
processes as the service uses them. tests/e2e/test_engine_workers.py has the processes' own
behaviour (a load that freezes nothing, memory, crashes) through a real server."""

import asyncio
import contextlib
import dataclasses
import threading
import time

import pytest

from common.errors import EngineFailed, ModelUnavailable
from catalog.engine_settings import EngineConfig
from catalog.sampling import SamplingParams
from generation.engine.types import Finished, TextDelta
from generation.engine.cache import EngineCache
from tests.support.direct_engine import direct_completions
from tests.support.server import SMALL_MODEL

GREEDY = dict(temperature=0.0)


def nothing() -> None:
    pass


async def open_stream(model, prompt, sampling, *, keep_leading_whitespace=True, released=nothing):
    """A stream's events as the service opens it: once the worker has admitted it."""
    stream = await model.stream(prompt, sampling, keep_leading_whitespace=keep_leading_whitespace, released=released)
    return stream.events()


async def generate(model, prompt, *, keep_leading_whitespace=True, released=nothing, **sampling):
    parts, finished = [], None
    sampling = SamplingParams(**{"max_tokens": 16, **GREEDY, **sampling})
    events = await open_stream(
        model, prompt, sampling, keep_leading_whitespace=keep_leading_whitespace, released=released
    )
    async for event in events:
        if isinstance(event, TextDelta):
            parts.append(event.text)
        else:
            finished = event
    return "".join(parts), finished


# The continuations compared with the engine's own completion path: (prompt, max_tokens).
CAPITAL = ("<bos>The capital of France is", 12)
INDENTED = ("<bos>def fib(n):\n", 10)


@pytest.fixture(scope="module")
def engine_completions(bundled_config):
    """The engine's own non-streaming completions of CAPITAL and INDENTED, which keep leading whitespace."""
    from django.conf import settings

    return direct_completions(bundled_config, settings.LLM_MODEL_CACHE_DIR, [CAPITAL, INDENTED])


async def test_greedy_generation_is_deterministic(bundled_model):
    first = await generate(bundled_model, "<bos>Once upon a time", max_tokens=24)
    second = await generate(bundled_model, "<bos>Once upon a time", max_tokens=24)
    assert first == second
    assert first[1].completion_tokens == 24


async def test_raw_continuation_keeps_leading_whitespace(bundled_model, engine_completions):
    """Streamed text equals the engine's completion path, leading space included."""
    prompt, max_tokens = CAPITAL
    text, finished = await generate(bundled_model, prompt, max_tokens=max_tokens)
    assert text.startswith(" ")
    assert text == engine_completions[CAPITAL]
    assert finished.prompt_tokens == 6


async def test_whitespace_only_first_token_is_kept(bundled_model, engine_completions):
    prompt, max_tokens = INDENTED
    text, _ = await generate(bundled_model, prompt, max_tokens=max_tokens)
    assert text.startswith("    ")  # the indentation the engine's chat path would drop
    assert text == engine_completions[INDENTED]


async def test_chat_output_is_not_given_leading_whitespace(bundled_model):
    text, _ = await generate(
        bundled_model, "<bos>The capital of France is", max_tokens=6, keep_leading_whitespace=False
    )
    assert not text.startswith(" ")


async def test_stop_sequence_ends_generation(bundled_model):
    text, finished = await generate(bundled_model, "<bos>def fib(n):\n", max_tokens=40, stop=("return",))
    assert finished.finish_reason == "stop"
    assert "return" not in text
    assert finished.completion_tokens < 40


async def test_max_tokens_bounds_generation(bundled_model):
    text, finished = await generate(bundled_model, "<bos>Once upon a time", max_tokens=5)
    assert finished == Finished(finish_reason="length", prompt_tokens=5, completion_tokens=5)
    assert text


def prompts_of_equal_lengths(lengths: int, each: int) -> list[str]:
    """`each` prompts of the same token count for each of `lengths` counts (a digit is one token)."""
    return [
        f"<bos>Question {digit}: what is {digit} plus {digit}?" + " Think." * length + " Answer:"
        for length in range(lengths)
        for digit in range(each)
    ]


async def test_sixteen_concurrent_streams_of_four_lengths_complete_with_the_same_text_as_alone(bundled_model):
    """Without the runner lock, concurrent submits fail ("Already borrowed"); without the
    prefill gate, prompts of the same length are prefilled in one step, which crashes
    ("input tensor is not contiguous"). Prompts of different lengths go in together."""
    prompts = prompts_of_equal_lengths(4, 4)
    counts = [await bundled_model.count_tokens(p) for p in prompts]
    assert [len(set(counts[i : i + 4])) for i in range(0, 16, 4)] == [1, 1, 1, 1] and len(set(counts)) == 4
    together = await asyncio.gather(*(generate(bundled_model, p, max_tokens=12) for p in prompts))
    assert all(finished.finish_reason == "length" for _, finished in together)
    alone = [await generate(bundled_model, p, max_tokens=12) for p in prompts[::5]]
    assert [text for text, _ in together[::5]] == [text for text, _ in alone]


async def test_closing_a_stream_frees_the_engine(bundled_model):
    released = threading.Event()
    stream = await open_stream(
        bundled_model,
        "<bos>1, 2, 3, 4, 5, 6, 7, 8, 9, 10,",
        SamplingParams(max_tokens=1000, temperature=0.0),
        released=released.set,
    )
    for _ in range(3):
        await anext(stream)
    await stream.aclose()
    # The worker drops the engine's iterator at its next token, and says so.
    assert await asyncio.to_thread(released.wait, 5)
    started = time.monotonic()
    text, _ = await generate(bundled_model, "<bos>Hello", max_tokens=2)
    assert time.monotonic() - started < 5


def long_prompt(seed: int) -> str:
    # About 900 tokens, the same count for each seed digit: a prefill of some seconds.
    return "<bos>" + " ".join(f"item {seed}-{index} is number {index * 7}." for index in range(60))


async def test_a_request_cancelled_at_the_prefill_gate_is_never_submitted(bundled_model):
    """Four long prompts of one length abandoned while the first is in prefill: the engine
    is released for the three that waited (for their count, which waits for the engine's
    step, or at the gate) at once, and for the first only when its prefill is over."""
    released = {}
    clock = time.monotonic
    assert len({await bundled_model.count_tokens(long_prompt(seed)) for seed in range(4)}) == 1

    async def first_event(index: int):
        events = await open_stream(
            bundled_model, long_prompt(index), SamplingParams(max_tokens=8, temperature=0.0),
            released=lambda: released.setdefault(index, clock()),
        )
        async with contextlib.aclosing(events):
            await anext(events)

    async def abandon(index: int):
        first = asyncio.ensure_future(first_event(index))
        await asyncio.sleep(0.3)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first

    abandoned_at = clock()
    await asyncio.gather(*(abandon(index) for index in range(4)))
    deadline = clock() + 300  # a prefill slows down tenfold on a machine loaded by other work
    while len(released) < 4 and clock() < deadline:
        await asyncio.sleep(0.02)
    assert len(released) == 4
    waited = sorted(moment - abandoned_at for moment in released.values())
    # Three never reached the engine; one was in prefill, which 0.9.5 cannot interrupt.
    assert waited[2] < 1.0 < waited[3], waited


async def test_a_failed_load_is_not_retried_before_its_backoff(tmp_path):
    cache = EngineCache(cache_dir=tmp_path, max_loaded=1, retry_after_failure=60)
    missing = EngineConfig(model_id="test/missing", source="gguf_file", location=str(tmp_path), filename="x.gguf")
    with pytest.raises(ModelUnavailable) as first:
        await cache.get(missing)
    assert str(tmp_path) not in first.value.message  # the path stays in the log
    assert "x.gguf" in first.value.message
    with pytest.raises(ModelUnavailable) as again:
        await cache.get(missing)
    assert cache.load_counts["test/missing"] == 1
    assert 50 <= again.value.retry_after <= 60
    moved = dataclasses.replace(missing, filename="y.gguf")  # a changed configuration is tried at once
    with pytest.raises(ModelUnavailable):
        await cache.get(moved)
    assert cache.load_counts["test/missing"] == 2


@pytest.fixture(scope="module")
def small_config(bundled_config):
    """The bundled SmolLM2's engine settings, for tests of loads and reloads: it loads in 1.5 s, Gemma in 8."""
    from generation.engine.model_files import SMOLLM2_PACKAGE

    return dataclasses.replace(bundled_config, model_id=SMALL_MODEL, location=SMOLLM2_PACKAGE)


@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory):
    from django.conf import settings

    cache = EngineCache(cache_dir=settings.LLM_MODEL_CACHE_DIR, max_loaded=1)
    yield cache
    for model_id in cache.loaded_model_ids():
        cache.unload(model_id)


async def test_concurrent_first_requests_load_the_model_once(fresh_cache, small_config):
    models = await asyncio.gather(*(fresh_cache.get(small_config) for _ in range(10)))
    assert fresh_cache.load_counts[small_config.model_id] == 1
    assert all(model is models[0] for model in models)
    assert (await fresh_cache.get(small_config)) is models[0]


async def test_a_changed_configuration_reloads_and_the_least_recently_used_is_evicted(fresh_cache, small_config):
    from generation.engine import model_files

    original = await fresh_cache.get(small_config)
    gguf = model_files.bundled_gguf(model_files.SMOLLM2_PACKAGE, fresh_cache.cache_dir)
    other = dataclasses.replace(
        small_config, model_id="local/smollm2-copy", source="gguf_file", location=str(gguf.parent), filename=gguf.name
    )
    copy = await fresh_cache.get(other)
    assert fresh_cache.loaded_model_ids() == ["local/smollm2-copy"]  # max_loaded=1: the bundled one went
    text, finished = await generate(copy, "The capital of France is", max_tokens=4)
    assert finished.completion_tokens == 4

    changed = dataclasses.replace(other, max_seqs=2, prefix_cache_n=4)
    reloaded = await fresh_cache.get(changed)
    assert reloaded is not copy and reloaded.config.max_seqs == 2
    assert fresh_cache.load_counts["local/smollm2-copy"] == 2
    assert original.config == small_config
    # The new settings are the engine's: its prefix cache, on now, gives a second turn the first
    # turn's prompt (mistral.rs's usage.prompt_tokens_details.cached_tokens).
    first_turn = "Once upon a time, in a quiet village by the sea, there lived an old fisherman who"
    text, first = await generate(reloaded, first_turn, max_tokens=3)
    _, second = await generate(reloaded, first_turn + text + " and then, one morning, the sea", max_tokens=3)
    assert first.cached_prompt_tokens == 0
    assert first.prompt_tokens // 2 < second.cached_prompt_tokens < second.prompt_tokens, (first, second)


async def test_a_load_failure_is_a_clear_error_and_other_models_keep_serving(engine_cache, bundled_model, tmp_path):
    missing = dataclasses.replace(
        bundled_model.config, model_id="local/missing", source="gguf_file", location=str(tmp_path), filename="nope.gguf"
    )
    with pytest.raises(ModelUnavailable, match="nope.gguf"):
        await engine_cache.get(missing)
    assert "local/missing" in engine_cache.failures
    text, finished = await generate(bundled_model, "<bos>Hello", max_tokens=2)
    assert finished.completion_tokens == 2


async def test_a_bad_gguf_is_a_clear_error(engine_cache, bundled_model, tmp_path):
    (tmp_path / "bad.gguf").write_bytes(b"not a gguf file at all")
    bad = dataclasses.replace(
        bundled_model.config, model_id="local/bad", source="gguf_file", location=str(tmp_path), filename="bad.gguf"
    )
    with pytest.raises(ModelUnavailable, match="local/bad could not be loaded"):
        await engine_cache.get(bad)


def facts(count: int, note: int) -> str:
    return f"<bos>Note {note}. " + " ".join(f"fact {i} is {i * 3}." for i in range(count))


async def test_after_a_mix_that_makes_the_engine_panic_the_next_request_is_served(engine_cache, bundled_model):
    """Two prompts of 357 tokens and one of 857 submitted at once make mistral.rs 0.9.5 panic
    in its own thread ("shape mismatch on dim 2, 1024 <> 512", in its KV cache; Gemma 3's
    sliding window is 512 tokens) on this machine; the one-at-a-time gate before the
    per-length one did too, on a mix of six (357, 357, 857, 357, 357, 857; 32 tokens). The
    streams under way fail with a clear error; the engine restarts its thread ("Engine ...
    is dead, rebooting"), and the next request is served by the same worker."""
    pid = bundled_model.pid
    prompts = [facts(40, 1), facts(40, 2), facts(90, 3)]
    counts = [await bundled_model.count_tokens(prompt) for prompt in prompts]
    assert counts == [357, 357, 857]

    async def attempt(prompt):  # submitted together
        try:
            stream = await bundled_model.stream(
                prompt, SamplingParams(max_tokens=8, **GREEDY), keep_leading_whitespace=True, released=nothing
            )
            return [event async for event in stream.events()]
        except EngineFailed as exc:
            return exc

    outcomes = await asyncio.gather(*(attempt(prompt) for prompt in prompts))
    failed = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    print(f"\n{len(failed)} of {len(prompts)} streams failed: {[str(error) for error in failed]}")
    assert all(error.message.startswith("The engine failed:") for error in failed)
    text, finished = await generate(bundled_model, "<bos>The capital of France is", max_tokens=4)
    assert finished.completion_tokens == 4 and text
    assert (await engine_cache.get(bundled_model.config)).pid == pid


async def test_a_worker_over_its_memory_limit_is_replaced_without_a_gap(small_config):
    """The bound for what the engine never gives back (its prefix cache grows by about 10 MB per generation): a
    loaded worker of SmolLM2 (loaded in 1.5 s, Gemma in 8) holds about 450 MB, over a limit of 100 MB. Its
    replacement loads while it serves, then takes its requests, even one whose caller got the old worker before
    the swap; the replacement, over the limit as it starts, is kept (replacing it again would not help)."""
    from django.conf import settings

    config = dataclasses.replace(small_config, prefix_cache_n=4)
    cache = EngineCache(cache_dir=settings.LLM_MODEL_CACHE_DIR, max_loaded=1, worker_max_rss_mb=100)
    try:
        first = await cache.get(config)
        assert first.rss_mb() > 100
        text, finished = await generate(first, "Hello", max_tokens=2)  # over the limit: a replacement loads
        assert finished.completion_tokens == 2
        served_while_loading = 0
        deadline = time.monotonic() + 300  # a load takes 5-8 s on a quiet machine, minutes on a busy one
        while (current := await cache.get(config)) is first and time.monotonic() < deadline:
            assert (await generate(current, "Hello", max_tokens=2))[0] == text
            served_while_loading += 1
        assert current is not first and current.pid != first.pid
        assert served_while_loading >= 1 and cache.model_states()[config.model_id]["pid"] == current.pid
        while first.rss_mb() and time.monotonic() < deadline:  # its process ends (0: gone)
            await asyncio.sleep(0.05)
        assert first.rss_mb() == 0
        assert (await generate(first, "Hello", max_tokens=2))[0] == text  # served by the replacement
        for _ in range(2):
            assert (await generate(current, "Hello", max_tokens=2))[0] == text
        assert await cache.get(config) is current and cache.load_counts[config.model_id] == 2
    finally:
        cache.unload(config.model_id)
