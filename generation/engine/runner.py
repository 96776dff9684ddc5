"""One mistral.rs `Runner`, in the process that imports it, with the ways around the
defects of mistral.rs 0.9.5 measured on CPU.

This is the only module that imports `mistralrs`. The service runs it inside a worker
process per model (generation.engine.worker); the benchmark runs it in-process, to
measure the engine without the service.

- `Runner` is not re-entrant ("Already borrowed"): submitting a request and tokenizing
  text both take the runner, so one lock is held around each of those calls.
- Two prompts prefilled in the same step crash on CPU ("input tensor is not
  contiguous"). The engine's scheduler runs, at each step, only sequences of one length
  (it buckets them by token count), so only prompts of the same token length are ever
  prefilled together. A prefill gate per model keeps those apart: a prompt is submitted
  only while no other prompt of its length is between its submit call and its first
  chunk; prompts of other lengths go straight in. A request still waiting at the gate
  when it is cancelled is never submitted; one in prefill is dropped at its first chunk
  (0.9.5 cannot interrupt a prefill).
- The chat path strips the leading whitespace of the output, which a raw continuation
  must keep: it is restored from the token text that the logprobs carry.
- The engine only sees prompts the service rendered itself, through a pass-through chat
  template (a base model's GGUF has none, and the engine refuses chat without one).
- The engine applies a seed to its device, and its CPU device cannot be seeded ("cannot
  seed the CPU rng with set_seed"): on a CPU build, a seeded load would fail, so the seed
  is left out, with a warning. (While the engine ran in the web process, only the
  process's first load created the device: a reload's seed was ignored silently.) The
  builds for an accelerator carry a local version, e.g. 0.9.5+cuda130.sm90.
- Paged attention, and with it a KV-cache memory goal, exists only on CUDA and Metal: a CPU
  build refuses a memory goal at load and ignores a block size, so a CPU build leaves an
  entry's KV-cache settings out, with a warning, as it does the seed.
"""

import dataclasses
import importlib.metadata
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mistralrs import ChatCompletionRequest, Runner, Which

from catalog.engine_settings import EngineConfig, memory_goal
from catalog.sampling import SamplingParams
from common.errors import EngineFailed, InvalidRequest, PromptTooLong
from generation.engine import model_files
from generation.engine.tracing import GenerationPhases
from generation.engine.types import ChatFormat, Finished, TextDelta, TokenLogprob
from generation.engine.json_schema_bounds import with_default_bounds

logger = logging.getLogger(__name__)

# How often a request waiting at the prefill gate checks whether it was cancelled.
PREFILL_GATE_POLL_SECONDS = 0.05

PASSTHROUGH_TEMPLATE = Path(__file__).with_name("passthrough_chat_template.jinja")
# A build for an accelerator (CUDA, Metal) carries a local version, e.g. 0.9.5+cuda130.sm90.
ACCELERATOR_BUILD = "+" in importlib.metadata.version("mistralrs")


def restore_leading_whitespace(delta: str, token_text: str | None) -> str:
    """The delta with the leading whitespace that the engine's chat path stripped.

    `token_text` is the text of the same token as the logprobs report it, unstripped.
    """
    if token_text is None or delta == token_text or not token_text.endswith(delta):
        return delta
    missing = token_text[: len(token_text) - len(delta)]
    return missing + delta if missing.isspace() else delta


class PrefillGate:
    """Lets a prompt into prefill unless another prompt of the same token length is in it."""

    def __init__(self):
        self._changed = threading.Condition()
        self._lengths_in_prefill: set[int] = set()

    def enter(self, prompt_tokens: int, cancelled: threading.Event) -> bool:
        """Wait for this length's turn, giving up as soon as the request is cancelled.

        True once admitted (call `leave` at the first chunk); False, not admitted, when
        the request was cancelled first.
        """
        with self._changed:
            while prompt_tokens in self._lengths_in_prefill and not cancelled.is_set():
                self._changed.wait(PREFILL_GATE_POLL_SECONDS)
            if cancelled.is_set():
                return False
            self._lengths_in_prefill.add(prompt_tokens)
            return True

    def leave(self, prompt_tokens: int) -> None:
        with self._changed:
            self._lengths_in_prefill.discard(prompt_tokens)
            self._changed.notify_all()


@dataclass(eq=False)
class LoadedEngine:
    config: EngineConfig
    runner: Runner
    context_length: int | None
    load_seconds: float
    chat_format: ChatFormat | None = None  # the model file's own, if it has one
    vocab_size: int | None = None  # a GGUF's (its token count); unknown for safetensors
    _runner_lock: threading.Lock = field(default_factory=threading.Lock)
    _prefill_gate: PrefillGate = field(default_factory=PrefillGate)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of a text, whose special tokens are written as text (a rendered prompt's "<bos>").

        The engine's tokenizer waits for the engine's step under way (about 30 ms while 4
        streams decode; a whole prefill during one, which a new request would wait for at
        the prefill gate anyway). A tokenizer of our own would cost 1.5 s more per load and
        200 MB more per worker.
        """
        with self._runner_lock:
            return self.runner.tokenize_text(text, False, False)

    def detokenize(self, tokens: list[int]) -> str:
        """The text of token ids, special tokens included. Ids outside the vocabulary raise ValueError."""
        with self._runner_lock:
            return self.runner.detokenize_text(tokens, False)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def admit(self, prompt: str, sampling: SamplingParams) -> tuple[int, SamplingParams]:
        """The prompt's token count, and the sampling with max_tokens fitted to what the context
        leaves; PromptTooLong for a prompt that does not fit."""
        prompt_tokens = self.count_tokens(prompt)
        return prompt_tokens, fit_to_context(self.config.model_id, prompt_tokens, self.context_length, sampling)

    def generate(
        self,
        prompt: str,
        sampling: SamplingParams,
        *,
        prompt_tokens: int,
        keep_leading_whitespace: bool,
        cancelled: threading.Event,
        phases: GenerationPhases | None = None,
    ) -> Iterator[TextDelta | Finished]:
        """Text deltas of a rendered prompt, then one Finished; nothing once `cancelled` is set.

        `prompt_tokens` is the prompt's length as `admit` counts it (the key of the
        prefill gate). Blocks while it waits at the prefill gate and for each token: run it
        in a thread of its own. Returning (or closing the iterator) drops the engine's stream, and the
        engine drops the sequence at its next step. Engine errors are raised. `phases` (when
        traced) is told when the prompt is submitted, when its first chunk comes, and when its last does.
        """
        request = ChatCompletionRequest(
            messages=[{"role": "user", "content": prompt}],
            model=self.config.model_id,
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            min_p=sampling.min_p,
            repetition_penalty=sampling.repetition_penalty,
            presence_penalty=sampling.presence_penalty,
            frequency_penalty=sampling.frequency_penalty,
            logit_bias=dict(sampling.logit_bias) or None,
            stop_seqs=list(sampling.stop) or None,
            grammar=_without_free_whitespace(with_default_bounds(sampling.json_schema))
            if sampling.json_schema is not None else None,
            grammar_type="json_schema" if sampling.json_schema is not None else None,
            stream=True,
            logprobs=keep_leading_whitespace or sampling.top_logprobs is not None,
            top_logprobs=sampling.top_logprobs or None,
        )
        if not self._prefill_gate.enter(prompt_tokens, cancelled):
            logger.debug("not submitted to %s: cancelled while it waited", self.config.model_id)
            return
        if phases is not None:
            phases.submitted()
        try:
            with self._runner_lock:
                chunks = self.runner.send_chat_completion_request(request)
            chunk = next(chunks, None)  # the prefill
            if phases is not None:
                phases.first_token()
        except ValueError as exc:
            if sampling.json_schema is None:
                raise
            # The engine compiles the schema when the request is submitted: one it cannot take is the client's.
            raise InvalidRequest(f"The JSON schema cannot be used: {exc}", field="json_schema") from None
        finally:
            self._prefill_gate.leave(prompt_tokens)
        stripping = keep_leading_whitespace  # until the first non-whitespace text
        while chunk is not None and not cancelled.is_set():
            choice = chunk.choices[0]
            text = choice.delta.content or ""
            if stripping:
                token_text = choice.logprobs.token if choice.logprobs is not None else None
                text = restore_leading_whitespace(text, token_text)
                stripping = not text.strip()
            if text:
                logprob = _token_logprob(choice.logprobs) if sampling.top_logprobs is not None else None
                yield TextDelta(text, logprob)
            if choice.finish_reason is not None:
                usage = chunk.usage
                details = usage.prompt_tokens_details if usage else None  # None when nothing was cached
                finished = Finished(
                    finish_reason=choice.finish_reason,
                    prompt_tokens=usage.prompt_tokens if usage else 0,
                    completion_tokens=usage.completion_tokens if usage else 0,
                    cached_prompt_tokens=(details.cached_tokens or 0) if details else 0,
                )
                if phases is not None:
                    phases.finished(finished)
                yield finished
                return
            chunk = next(chunks, None)
        if cancelled.is_set():
            logger.debug("dropped by %s: cancelled", self.config.model_id)
        else:
            raise EngineFailed("The engine ended the stream without a finish reason")


# What OpenAI reports for a token that sampling left no chance: JSON has no -inf.
IMPOSSIBLE_LOGPROB = -9999.0


def _finite(logprob: float) -> float:
    return logprob if math.isfinite(logprob) else IMPOSSIBLE_LOGPROB


def _without_free_whitespace(json_schema: str) -> str:
    """The schema with llguidance's JSON whitespace fixed (compact JSON), unless it says otherwise.

    By default the grammar lets whitespace run free between tokens, and a base model then
    fills its answer with newlines and indentation until max_tokens (Gemma 3 270M, 1 answer
    in 6 or so); compact JSON ends within the schema's bounds.
    """
    schema = json.loads(json_schema)
    if isinstance(schema, dict):
        schema.setdefault("x-guidance", {"whitespace_flexible": False})
    return json.dumps(schema)


def _token_logprob(reported) -> TokenLogprob | None:
    if reported is None:
        return None
    return TokenLogprob(
        token=reported.token,
        logprob=_finite(reported.logprob),
        bytes=tuple(reported.bytes) if reported.bytes is not None else None,
        # The engine gives each alternative's id and its text (as `bytes`).
        top=tuple((top.bytes if top.bytes is not None else "", _finite(top.logprob)) for top in reported.top_logprobs),
    )


def fit_to_context(model_id: str, prompt_tokens: int, context: int | None, sampling: SamplingParams) -> SamplingParams:
    """The sampling with max_tokens fitted to what a context of `context` tokens leaves after the
    prompt; PromptTooLong for a prompt that does not fit (no limit where the context is unknown)."""
    if not context:
        return sampling
    if prompt_tokens >= context:
        raise PromptTooLong(
            f"The prompt is {prompt_tokens} tokens; model {model_id!r} has a context of {context} tokens."
        )
    return dataclasses.replace(sampling, max_tokens=min(sampling.max_tokens, context - prompt_tokens))


def kv_cache_options(config: EngineConfig, *, accelerator: bool) -> dict:
    """The Runner's paged-attention arguments for the entry's KV-cache settings: none where it sets
    none (the engine's own sizing), nor on a CPU build, whose engine refuses a memory goal ("an
    explicit memory goal requires supported paged attention") and ignores a block size."""
    if not (config.kv_cache_memory or config.kv_cache_block_size):
        return {}
    if not accelerator:
        logger.warning("KV-cache memory %r and block size %s not applied: this CPU build of the engine has no "
                       "paged attention", config.kv_cache_memory, config.kv_cache_block_size)
        return {}
    return {"memory_goal": memory_goal(config.kv_cache_memory), "pa_blk_size": config.kv_cache_block_size}


def load_engine(config: EngineConfig, cache_dir: Path) -> LoadedEngine:
    """Prepare the model's files and load its Runner. Holds the GIL for the whole load."""
    started = time.perf_counter()
    tokenizer_json = config.tokenizer_json or None
    context_length = config.context_length
    chat_format = vocab_size = None
    gguf_path = model_files.local_gguf(
        source=config.source, location=config.location, filename=config.filename, cache_dir=cache_dir
    )
    if gguf_path is None:
        which = Which.Plain(model_id=config.location, tokenizer_json=tokenizer_json)
    else:
        prepared = model_files.prepare_gguf(gguf_path, cache_dir)
        tokenizer_json = tokenizer_json or str(prepared.tokenizer_json)
        context_length = context_length or prepared.context_length
        vocab_size = prepared.metadata["vocab_size"]
        chat_format = prepared.chat_format
        which = Which.GGUF(
            quantized_model_id=str(gguf_path.parent),
            quantized_filename=gguf_path.name,
            tokenizer_json=tokenizer_json,
        )
    if tokenizer_json is None:
        raise ValueError("A safetensors model needs a tokenizer.json path in the catalog")
    if config.seed is not None and not ACCELERATOR_BUILD:
        logger.warning("seed %d not applied: this CPU build of the engine cannot seed sampling", config.seed)
    runner = Runner(
        which=which,
        token_source="env:HF_TOKEN" if os.environ.get("HF_TOKEN") else "none",  # gated hub repositories
        max_seqs=config.max_seqs,
        jinja_explicit=str(PASSTHROUGH_TEMPLATE),
        in_situ_quant=config.in_situ_quant or None,
        seed=config.seed if ACCELERATOR_BUILD else None,
        prefix_cache_n=config.prefix_cache_n,
        **kv_cache_options(config, accelerator=ACCELERATOR_BUILD),
    )
    return LoadedEngine(
        config=config,
        runner=runner,
        context_length=context_length,
        load_seconds=time.perf_counter() - started,
        chat_format=chat_format,
        vocab_size=vocab_size,
    )
