"""A generation's admission by its worker, through the generation core in-process with the
real model: one message to the worker per generation (its prompt's tokens counted there,
not asked for first), a prompt over the context refused with the error it always had, and
the key's tokens reserved before any output."""

from multiprocessing.connection import Connection

import pytest
from asgiref.sync import sync_to_async

from access.models import RateWindow
from access.selectors import active_key
from access.services import create_api_key
from catalog.sampling import SamplingParams
from common.errors import PromptTooLong, RateLimited
from generation.core.limiter import ConcurrencyLimiter
from generation.lifecycle.runtime import Runtime, install
from generation.core.service import prepare_generation
from generation.core.request import GenerationRequest

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("bundled_entry_in_catalog")]

MODEL = "google/gemma-3-270m"
GREEDY = SamplingParams(max_tokens=4, temperature=0.0)


@pytest.fixture
def one_slot(engine_cache):
    """The session's engine behind a limiter of one slot: a slot not given back makes the next
    request time out (Overloaded)."""
    limiter = ConcurrencyLimiter(max_active=1, max_queued=1, timeout=30)
    previous = install(Runtime(engine_cache=engine_cache, limiter=limiter))
    yield
    install(previous)


@pytest.fixture
def sent_to_workers(monkeypatch):
    """Every message this process sends to its engine workers over their channels, in order."""
    messages = []
    send = Connection.send

    def recorded(connection, message):
        messages.append(message)
        send(connection, message)

    monkeypatch.setattr(Connection, "send", recorded)
    return messages


def kinds(messages) -> list[str]:
    return [type(message).__name__ for message in messages]


async def test_a_generation_is_one_message_to_its_worker(one_slot, sent_to_workers):
    generation = await prepare_generation(GenerationRequest(prompt="The capital of France is", sampling=GREEDY))
    assert generation.prompt_tokens == 6  # counted by the worker, before any output
    text, finished, _ = await generation.collect()
    assert text and (finished.prompt_tokens, finished.completion_tokens) == (6, 4)
    assert kinds(sent_to_workers) == ["Generate"]  # no Tokenize first


async def test_a_prompt_over_the_context_is_refused_with_the_counts_and_frees_its_slot(one_slot, sent_to_workers):
    with pytest.raises(PromptTooLong) as refused:
        await prepare_generation(GenerationRequest(prompt="hello " * 33000, sampling=GREEDY))
    error = refused.value
    assert (error.status, error.code, error.field) == (400, "context_length_exceeded", "prompt")
    # <bos> + 33000 words + the trailing space: 33002 tokens.
    assert error.message == f"The prompt is 33002 tokens; model {MODEL!r} has a context of 32768 tokens."
    assert kinds(sent_to_workers) == ["Generate"]
    generation = await prepare_generation(GenerationRequest(prompt="Hello", sampling=GREEDY))  # the one slot
    await generation.collect()


async def test_a_keys_tokens_are_reserved_before_output_and_a_refusal_after_admission_frees_everything(
    one_slot, sent_to_workers
):
    _, secret = await sync_to_async(create_api_key)(name="limited", tokens_per_minute=15)
    key = await sync_to_async(active_key)(secret=secret)  # as authentication loads it
    generation = await prepare_generation(
        GenerationRequest(prompt="The capital of France is", sampling=GREEDY, api_key=key)
    )
    window = await RateWindow.objects.aget(api_key=key)
    assert (window.requests, window.tokens) == (1, 6 + 4)  # the prompt and max_tokens, before any output
    await generation.collect()

    # Room left in the window (10 of 15 tokens), but not for this prompt and its max_tokens (6 + 4):
    # refused once the worker has admitted and counted the prompt, which is cancelled. (A window
    # already full is refused before the engine: tests/unit/test_native_contract.py.)
    with pytest.raises(RateLimited):
        await prepare_generation(GenerationRequest(prompt="The capital of Italy is", sampling=GREEDY, api_key=key))
    generation = await prepare_generation(GenerationRequest(prompt="Hello", sampling=GREEDY))  # the slot came back
    await generation.collect()
    assert kinds(sent_to_workers) == ["Generate", "Generate", "Cancel", "Generate"]
