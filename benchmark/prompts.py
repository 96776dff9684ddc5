"""The benchmark's prompts: short fixed continuations, or prompts of an exact token length.

Prompts of an exact length are random words of the model's own vocabulary, drawn from a
seeded RNG, re-encoded with the tokenizer the service uses for the model until the count
is exact, and never repeated within a run: no cache (a prefix cache, llama-server's slots)
helps a request unless a conversation resends its own history (`Conversation`).

Counts are those of the prompt's text alone: the service prepends the model's BOS token
(one token more), a chat request its template as well.
"""

import random
import re
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from catalog.engine_settings import EngineConfig
from generation.engine import model_files

# Continuations of varied topics and lengths: the same list, in the same order, for every target.
SHORT_PROMPTS = (
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

# A vocabulary entry that is a whole lowercase word after a space: SentencePiece writes the
# space as "▁", byte-level BPE (GPT-2 style) as "Ġ".
WORD_TOKEN = re.compile(r"[\u2581\u0120]([a-z]{3,10})")

# What the assistant answers at every turn of a conversation, whatever the target generated.
CHAT_REPLY = "I see. Tell me more, and I will answer as well as I can."


@dataclass(frozen=True)
class Prompt:
    text: str
    tokens: int | None  # of the text alone (no BOS), by the model's tokenizer; None: not counted


def short_prompts(count: int) -> list[Prompt]:
    return [Prompt(SHORT_PROMPTS[i % len(SHORT_PROMPTS)], None) for i in range(count)]


def service_tokenizer_path(config: EngineConfig, cache_dir: Path) -> Path:
    """The tokenizer.json that the service loads for a catalog entry (as `load_engine` finds it)."""
    if config.tokenizer_json:
        return Path(config.tokenizer_json)
    gguf = model_files.local_gguf(
        source=config.source, location=config.location, filename=config.filename, cache_dir=cache_dir
    )
    if gguf is None:
        raise ValueError(f"{config.model_id} has no tokenizer.json in the catalog")
    return model_files.prepare_gguf(gguf, cache_dir).tokenizer_json


class PromptMaker:
    """Makes prompts of exactly N tokens, each different from every other it made."""

    MAX_TRIES = 200

    def __init__(self, tokenizer: Tokenizer, *, seed: int = 0):
        self._tokenizer = tokenizer
        self._rng = random.Random(seed)
        self._words = sorted({m[1] for m in map(WORD_TOKEN.fullmatch, tokenizer.get_vocab()) if m})
        if len(self._words) < 100:
            raise ValueError("the tokenizer's vocabulary has too few whole words to draw prompts from")
        self._made: set[str] = set()

    def count(self, text: str) -> int:
        """Tokens of the text alone, special tokens written as text counted as the service does."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def exact(self, tokens: int) -> Prompt:
        if tokens < 1:
            raise ValueError("a prompt has at least one token")
        words: list[str] = []
        for _ in range(self.MAX_TRIES):
            count = self.count(" ".join(words))
            if count == tokens:
                text = " ".join(words)
                if text not in self._made:
                    self._made.add(text)
                    return Prompt(text, tokens)
                count = tokens + 1  # made before: draw its last word again
            if count > tokens:
                # A word is at least one token: dropping the excess in words lands at or under.
                del words[-max(1, count - tokens):]
            else:
                words += self._rng.choices(self._words, k=tokens - count)
        raise RuntimeError(f"no prompt of exactly {tokens} tokens after {self.MAX_TRIES} tries")


class Conversation:
    """A chat whose every turn resends the whole history as one raw continuation prompt:
    user messages of a given length, the same assistant reply after each."""

    def __init__(self, maker: PromptMaker, *, turns: int, message_tokens: int):
        self._maker = maker
        self._messages = [maker.exact(message_tokens).text for _ in range(turns)]

    def prompt(self, turn: int) -> Prompt:
        """The prompt of turn `turn` (from 1): every earlier exchange, then this turn's message."""
        history = "".join(f"User: {message}\nAssistant: {CHAT_REPLY}\n" for message in self._messages[:turn - 1])
        text = f"{history}User: {self._messages[turn - 1]}\nAssistant:"
        return Prompt(text, self._maker.count(text))
