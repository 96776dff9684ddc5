"""An exact `tokenizer.json` for SentencePiece-style GGUF models.

mistral.rs 0.9.5 converts the tokenizer stored in a GGUF wrongly for Gemma 3 (spaces
dropped, words split into letters), so the service builds its own from the GGUF's
metadata and hands it to the engine. The result reproduces llama.cpp's tokenizer on the
same file:

- control tokens (`<bos>`, `<start_of_turn>`...) and user-defined tokens (runs of
  spaces and newlines, `\\t`, HTML tags) are split out of the text first, longest
  match first, before any other processing;
- the rest is a SentencePiece BPE: spaces become `▁`, and adjacent pieces merge
  while their concatenation is in the vocabulary, highest score first;
- characters outside the vocabulary fall back to `<0xNN>` byte tokens.

The engine accepts a tokenizer.json only if its vocabulary matches the GGUF's token at
every id, which holds by construction here.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

from generation.files import atomic_output

SPACE_MARKER = "▁"

# llama.cpp token types (tokenizer.ggml.token_type).
TOKEN_NORMAL = 1
TOKEN_CONTROL = 3
TOKEN_USER_DEFINED = 4


class UnsupportedTokenizer(ValueError):
    """The GGUF's tokenizer is not one this builder reproduces."""


@dataclass(frozen=True)
class GGUFVocabulary:
    tokens: list[str]
    scores: list[float]
    token_types: list[int]
    unknown_token_id: int
    metadata: dict  # small scalar metadata: architecture, context length, special tokens


def _array(reader: GGUFReader, key: str) -> list:
    field = reader.fields[key]
    if isinstance(field.parts[field.data[0]], np.ndarray) and field.parts[field.data[0]].dtype == np.uint8:
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
    return np.concatenate([field.parts[i] for i in field.data]).tolist()


def _scalar(reader: GGUFReader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def read_vocabulary(gguf_path: str | Path) -> GGUFVocabulary:
    reader = GGUFReader(str(gguf_path))
    model_type = _scalar(reader, "tokenizer.ggml.model")
    if model_type != "llama":
        raise UnsupportedTokenizer(
            f"{gguf_path}: tokenizer type {model_type!r}; only SentencePiece ('llama') GGUF tokenizers are built"
        )
    if _scalar(reader, "tokenizer.ggml.add_space_prefix", False):
        raise UnsupportedTokenizer(f"{gguf_path}: tokenizers with a space prefix are not supported")
    tokens = _array(reader, "tokenizer.ggml.tokens")
    architecture = _scalar(reader, "general.architecture")
    special = {
        name: tokens[token_id]
        for name in ("bos", "eos", "unknown")
        if (token_id := _scalar(reader, f"tokenizer.ggml.{name}_token_id")) is not None
    }
    return GGUFVocabulary(
        tokens=tokens,
        scores=_array(reader, "tokenizer.ggml.scores"),
        token_types=_array(reader, "tokenizer.ggml.token_type"),
        unknown_token_id=_scalar(reader, "tokenizer.ggml.unknown_token_id", 0),
        metadata={
            "architecture": architecture,
            "context_length": _scalar(reader, f"{architecture}.context_length"),
            "bos_token": special.get("bos"),
            "eos_token": special.get("eos"),
            "add_bos_token": bool(_scalar(reader, "tokenizer.ggml.add_bos_token", True)),
        },
    )


def _merges(vocabulary: GGUFVocabulary) -> list[tuple[str, str]]:
    """Every split of a normal token into two vocabulary pieces, best merged score first.

    Ranking by the merged token's score makes BPE merge in the order SentencePiece
    (and llama.cpp) do.
    """
    ids = {token: token_id for token_id, token in enumerate(vocabulary.tokens)}
    ranked = []
    for token_id, (token, token_type) in enumerate(zip(vocabulary.tokens, vocabulary.token_types)):
        if token_type != TOKEN_NORMAL:
            continue
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ids and right in ids:
                ranked.append((-vocabulary.scores[token_id], token_id, cut, left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def build_tokenizer(vocabulary: GGUFVocabulary) -> Tokenizer:
    tokenizer = Tokenizer(
        models.BPE(
            vocab={token: token_id for token_id, token in enumerate(vocabulary.tokens)},
            merges=_merges(vocabulary),
            unk_token=vocabulary.tokens[vocabulary.unknown_token_id],
            byte_fallback=True,
            fuse_unk=True,
        )
    )
    tokenizer.normalizer = normalizers.Replace(" ", SPACE_MARKER)
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace(SPACE_MARKER, " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    # Added tokens are matched on the raw text, longest first, before normalization:
    # that is how llama.cpp splits out control and user-defined tokens.
    tokenizer.add_tokens(
        [
            AddedToken(token, special=token_type == TOKEN_CONTROL, normalized=False)
            for token, token_type in zip(vocabulary.tokens, vocabulary.token_types)
            if token_type in (TOKEN_CONTROL, TOKEN_USER_DEFINED)
        ]
    )
    return tokenizer


def write_tokenizer_json(gguf_path: str | Path, output_path: str | Path) -> GGUFVocabulary:
    """Build the tokenizer of a GGUF file and write it as tokenizer.json (atomically)."""
    vocabulary = read_vocabulary(gguf_path)
    with atomic_output(Path(output_path)) as partial:
        build_tokenizer(vocabulary).save(str(partial))
    return vocabulary
