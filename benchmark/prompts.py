"""The benchmark's prompts: short fixed continuations, or prompts of an exact token length.

Prompts of an exact length are random words of the model's own vocabulary, drawn from a
seeded RNG, re-encoded with the tokenizer the service uses for the model until the count
is exact, and never repeated within a run: no cache (a prefix cache, llama-server's slots)
helps a request unless a conversation resends its own history (`Conversation`).

Counts are those of the prompt's text alone: the service prepends the model's BOS token
(one token more), a chat request its template as well (a chat target reports the server's
own count instead).
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

# What a conversation's user asks after each reply, the turn choosing which: short, as chat users ask.
FOLLOW_UPS = (
    "Can you say that more briefly?",
    "Why is that?",
    "Give me an example.",
    "What follows from that?",
)


@dataclass(frozen=True)
class Prompt:
    text: str  # what a raw target continues
    tokens: int | None  # of the text alone (no BOS), by the model's tokenizer; None: not counted
    chat: tuple[tuple[str, str], ...] = ()  # a conversation's (role, content) so far; (): the text alone

    @property
    def messages(self) -> list[dict]:
        """What a chat target sends: the conversation, or the text as one user message."""
        return [{"role": role, "content": content} for role, content in self.chat] or [
            {"role": "user", "content": self.text}
        ]


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
    """A chat as clients send it: a first user message of a given length, then at every turn the
    whole history again, each earlier turn with the reply the target generated for it, and a
    short follow-up question. Raw targets get it as one continuation ("User: ...\nAssistant: ...")."""

    def __init__(self, maker: PromptMaker, *, first_message_tokens: int):
        self._maker = maker
        self._messages = [("user", maker.exact(first_message_tokens).text)]

    def reply(self, text: str) -> None:
        """The target's reply to the latest turn: the next turn resends it, then asks a follow-up."""
        turn = (len(self._messages) + 1) // 2
        self._messages += [("assistant", text), ("user", FOLLOW_UPS[(turn - 1) % len(FOLLOW_UPS)])]

    def prompt(self) -> Prompt:
        """The prompt of the next turn: every earlier exchange, then this turn's message."""
        messages = tuple(self._messages)
        text = "".join(_raw_line(role, content) for role, content in messages) + "Assistant:"
        return Prompt(text, self._maker.count(text), chat=messages)


def _raw_line(role: str, content: str) -> str:
    if role == "user":
        return f"User: {content}\n"
    # The reply as the target continued "Assistant:", its leading space included, so that the
    # history is the text the target saw and generated.
    return f"Assistant:{content if content[:1].isspace() else ' ' + content}\n"
