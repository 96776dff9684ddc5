"""Tokenize and detokenize requests: a model's tokenizer (in its worker), within a concurrency
slot, counted against the caller's API key like a generation's prompt."""

from collections.abc import Awaitable, Callable
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings

from access.services import admit_tokenizer_request, check_model_allowed, settle_tokens
from catalog.selectors import ServableModel, resolve_model
from common.errors import InvalidRequest
from generation.core.service import current_catalog, engine_cache, limiter
from generation.engine.channel import ModelWorker

Result = TypeVar("Result")


async def _counted_tokenizer_request(
    model_id: str | None,
    api_key,
    *,
    estimate: int,
    work: Callable[[ServableModel], Awaitable[Result]],
    count: Callable[[Result], int],
) -> Result:
    """`work` on the model, allowed for the key and counted against its limits like a
    generation's prompt: one request, `estimate` tokens reserved before the work and its
    `count` counted after (nothing, if it failed)."""
    model = resolve_model(await current_catalog(), model_id=model_id)
    if api_key is None:
        return await work(model)
    check_model_allowed(api_key=api_key, model_id=model.model_id)  # no query: active_key loaded its models
    admission = await sync_to_async(admit_tokenizer_request)(api_key=api_key, estimate=estimate)
    used = 0
    try:
        result = await work(model)
        used = count(result)
        return result
    finally:
        if admission is not None:
            await sync_to_async(settle_tokens)(admission=admission, used_tokens=used)


async def _tokenizer_of(model: ServableModel) -> ModelWorker:
    """The loaded model for a tokenizer request, loaded within a concurrency slot."""
    await limiter().acquire()  # a load, if the model is not loaded yet, is work for the engine
    try:
        return await engine_cache().get(model.engine)
    finally:
        limiter().release()


async def tokenize(model_id: str | None, text: str, *, api_key=None) -> tuple[str, tuple[int, ...]]:
    """The model's id and the token ids of `text` (no BOS added; special tokens written as text
    parsed), its characters reserved against the key's tokens per minute and its tokens counted."""
    limit = settings.LLM_TOKENIZE_MAX_CHARS
    if len(text) > limit:
        raise InvalidRequest(
            f"The text is {len(text)} characters, over this service's limit of {limit} characters.", field="text"
        )
    return await _counted_tokenizer_request(
        model_id, api_key, estimate=len(text), work=lambda model: _tokenize(model, text),
        count=lambda result: len(result[1]),
    )


async def _tokenize(model: ServableModel, text: str) -> tuple[str, tuple[int, ...]]:
    loaded = await _tokenizer_of(model)
    return loaded.config.model_id, await loaded.tokenize(text)


async def detokenize(model_id: str | None, tokens: list[int], *, api_key=None) -> tuple[str, str]:
    """The model's id and the text of `tokens`, counted against the key's limits like a prompt."""
    return await _counted_tokenizer_request(
        model_id, api_key, estimate=len(tokens), work=lambda model: _detokenize(model, tokens),
        count=lambda _: len(tokens),
    )


async def _detokenize(model: ServableModel, tokens: list[int]) -> tuple[str, str]:
    loaded = await _tokenizer_of(model)
    return loaded.config.model_id, await loaded.detokenize(tuple(tokens))
