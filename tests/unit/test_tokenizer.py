"""A GGUF tokenizer with an unsupported pre-tokenizer is refused (the tokenizers against
llama.cpp's reference ids: tests/e2e/test_tokenizer.py)."""

import pytest

from generation.engine.gguf_tokenizer import GGUFVocabulary, UnsupportedTokenizer, build_tokenizer


def test_an_unsupported_byte_level_pre_tokenizer_is_refused():
    vocabulary = GGUFVocabulary(
        tokens=["a", "b", "ab"],
        scores=[],
        token_types=[1, 1, 1],
        unknown_token_id=0,
        metadata={},
        model="gpt2",
        merges=[("a", "b")],
        pre="qwen2",
    )
    with pytest.raises(UnsupportedTokenizer, match="'qwen2' is not supported"):
        build_tokenizer(vocabulary)
