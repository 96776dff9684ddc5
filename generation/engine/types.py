"""What the service and the engine processes say to each other about a generation.

Plain values, picklable, with no engine types in them: the web process builds them
without importing mistral.rs, and they cross the channel to a worker process unchanged.
A generation's sampling parameters are the catalog's SamplingParams (catalog.sampling).
"""

import re
from dataclasses import dataclass
from pathlib import Path

MAX_ERROR_SUMMARY_CHARS = 300
_PATH = re.compile(r"(?:/[^\s'\"/:]+){2,}/?")  # an absolute path of two parts or more


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    bytes: tuple[int, ...] | None
    top: tuple[tuple[str, float], ...]  # the most likely tokens at this position, with their logprobs


@dataclass(frozen=True)
class TextDelta:
    text: str
    logprob: TokenLogprob | None = None  # when the sampling asked for logprobs


@dataclass(frozen=True)
class ChatFormat:
    """A model file's own chat template and the special tokens it refers to (a GGUF's
    tokenizer.chat_template), for a catalog entry that has no template of its own."""

    template: str
    bos_token: str
    eos_token: str


@dataclass(frozen=True)
class Finished:
    finish_reason: str  # as the engine reports it: "stop", "length", "eos"...
    prompt_tokens: int
    completion_tokens: int
    # Prompt tokens the engine took from its prefix cache instead of prefilling them (its
    # usage.prompt_tokens_details.cached_tokens; 0 with the prefix cache off).
    cached_prompt_tokens: int = 0


def engine_error_summary(exc: BaseException) -> str:
    """What a client may read of an engine error: its first line, without server paths.

    The engine's messages can carry a Rust backtrace and file paths; the log keeps those.
    """
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else type(exc).__name__
    first = _PATH.sub(lambda match: Path(match.group(0)).name, first)
    return first[:MAX_ERROR_SUMMARY_CHARS]
