"""A tokenizer built in memory for the benchmark's prompts: one token per word."""

import itertools

from tokenizers import Tokenizer, models, pre_tokenizers


def word_tokenizer() -> Tokenizer:
    """One token per word; 200 whole words (SentencePiece-style) for the prompts to be drawn from."""
    words = ["\u2581" + "".join(letters) for letters in itertools.product("abcdefghij", "klmnopqrst", "uvw")][:200]
    tokenizer = Tokenizer(models.WordLevel({word: i for i, word in enumerate(["[UNK]", *words])}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer
