"""An exact `tokenizer.json` for a GGUF model, built from the GGUF's own metadata.

mistral.rs 0.9.5 converts the tokenizer stored in a GGUF wrongly for Gemma 3 (spaces
dropped, words split into letters), so the service builds its own and hands it to the
engine. The result reproduces llama.cpp's tokenizer on the same file, for two kinds
(`tokenizer.ggml.model`):

- "llama", SentencePiece (Gemma 3): spaces become `▁`, and adjacent pieces merge while
  their concatenation is in the vocabulary, highest score first; characters outside the
  vocabulary fall back to `<0xNN>` byte tokens;
- "gpt2", GPT-2-style byte-level BPE (SmolLM2): the text is split into words by the
  regexes llama.cpp assigns to the GGUF's `tokenizer.ggml.pre`, each byte becomes a
  printable character, and the GGUF's ranked merges apply within each word.

In both, control tokens (`<bos>`, `<|im_start|>`...) and user-defined tokens are split
out of the text first, longest match first, before any other processing.

The engine accepts a tokenizer.json only if its vocabulary matches the GGUF's token at
every id, which holds by construction here.
"""

from dataclasses import dataclass
from pathlib import Path

from gguf import LlamaFileType
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
)

from generation.engine.files import atomic_output
from generation.engine.gguf_file import read_header

SENTENCEPIECE = "llama"
BYTE_LEVEL_BPE = "gpt2"

SPACE_MARKER = "▁"

# llama.cpp token types (tokenizer.ggml.token_type).
TOKEN_NORMAL = 1
TOKEN_CONTROL = 3
TOKEN_USER_DEFINED = 4

# The word-splitting regexes of llama.cpp (llama-vocab.cpp) per `tokenizer.ggml.pre` name.
# They apply in turn, each splitting every piece of the previous one, and text a regex does
# not match stays a piece of its own. Other names use other regexes or other options.
GPT2_WORDS = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
PRE_TOKENIZER_REGEXES = {
    "gpt-2": [GPT2_WORDS],
    "smollm": [r"\p{N}", GPT2_WORDS],
}


class UnsupportedTokenizer(ValueError):
    """The GGUF's tokenizer is not one this builder reproduces."""


@dataclass(frozen=True)
class GGUFVocabulary:
    tokens: list[str]
    scores: list[float]  # SentencePiece only: byte-level BPE GGUFs rank merges instead
    token_types: list[int]
    unknown_token_id: int
    metadata: dict  # small scalar metadata: architecture, context length, special tokens
    model: str  # tokenizer.ggml.model: SENTENCEPIECE or BYTE_LEVEL_BPE
    merges: list[tuple[str, str]]  # byte-level BPE only, best first
    pre: str | None  # byte-level BPE: the name of its word-splitting regexes


def _file_type_name(file_type: int | None) -> str | None:
    """The weights' type as llama.cpp names it (15: Q4_K_M), from `general.file_type`."""
    if file_type is None:
        return None
    try:
        return LlamaFileType(file_type).name.removeprefix("MOSTLY_")
    except ValueError:
        return f"type {file_type}"


def read_vocabulary(gguf_path: str | Path) -> GGUFVocabulary:
    header = read_header(gguf_path)
    fields = header.metadata
    model = fields.get("tokenizer.ggml.model")
    if model not in (SENTENCEPIECE, BYTE_LEVEL_BPE):
        raise UnsupportedTokenizer(
            f"{gguf_path}: tokenizer type {model!r}; only SentencePiece ({SENTENCEPIECE!r}) and byte-level BPE "
            f"({BYTE_LEVEL_BPE!r}) GGUF tokenizers are built"
        )
    # llama.cpp never adds a space prefix for BPE, whatever the flag says.
    if model == SENTENCEPIECE and fields.get("tokenizer.ggml.add_space_prefix", False):
        raise UnsupportedTokenizer(f"{gguf_path}: tokenizers with a space prefix are not supported")
    tokens = fields["tokenizer.ggml.tokens"]
    architecture = fields.get("general.architecture")
    special = {
        name: tokens[token_id]
        for name in ("bos", "eos", "eot", "eom", "unknown")
        if (token_id := fields.get(f"tokenizer.ggml.{name}_token_id")) is not None
    }
    return GGUFVocabulary(
        tokens=tokens,
        scores=fields["tokenizer.ggml.scores"] if model == SENTENCEPIECE else [],
        token_types=fields["tokenizer.ggml.token_type"],
        unknown_token_id=fields.get("tokenizer.ggml.unknown_token_id", 0),
        metadata={
            "architecture": architecture,
            "context_length": fields.get(f"{architecture}.context_length"),
            "vocab_size": len(tokens),  # the model's logits: the token ids a request's logit_bias may name
            "bos_token": special.get("bos"),
            "eos_token": special.get("eos"),
            "add_bos_token": bool(fields.get("tokenizer.ggml.add_bos_token", True)),
            "chat_template": fields.get("tokenizer.chat_template"),
            # What the admin shows of the file.
            "name": fields.get("general.name"),
            "size_label": fields.get("general.size_label"),
            "quantization": _file_type_name(fields.get("general.file_type")),
            "parameters": sum(tensor.n_elements for tensor in header.tensors),
            "end_of_turn_token": special.get("eot"),
            "end_of_message_token": special.get("eom"),
        },
        model=model,
        merges=(
            [tuple(merge.split(" ", 1)) for merge in fields["tokenizer.ggml.merges"]]
            if model == BYTE_LEVEL_BPE
            else []
        ),
        pre=fields.get("tokenizer.ggml.pre"),
    )


def _sentencepiece_merges(vocabulary: GGUFVocabulary) -> list[tuple[str, str]]:
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


def _sentencepiece_tokenizer(vocabulary: GGUFVocabulary) -> Tokenizer:
    tokenizer = Tokenizer(
        models.BPE(
            vocab={token: token_id for token_id, token in enumerate(vocabulary.tokens)},
            merges=_sentencepiece_merges(vocabulary),
            unk_token=vocabulary.tokens[vocabulary.unknown_token_id],
            byte_fallback=True,
            fuse_unk=True,
        )
    )
    tokenizer.normalizer = normalizers.Replace(" ", SPACE_MARKER)
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace(SPACE_MARKER, " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    return tokenizer


def _byte_level_tokenizer(vocabulary: GGUFVocabulary) -> Tokenizer:
    regexes = PRE_TOKENIZER_REGEXES.get(vocabulary.pre)
    if regexes is None:
        raise UnsupportedTokenizer(
            f"byte-level BPE pre-tokenizer {vocabulary.pre!r} is not supported "
            f"(supported: {', '.join(sorted(PRE_TOKENIZER_REGEXES))})"
        )
    vocab = {token: token_id for token_id, token in enumerate(vocabulary.tokens)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=vocabulary.merges))
    # The words are split on the raw text, then mapped byte by byte, as llama.cpp does.
    steps = [pre_tokenizers.Split(Regex(regex), behavior="isolated") for regex in regexes]
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    # llama.cpp drops a byte without a token (SmolLM2 has none for a few control
    # characters) after merging, so its neighbours never merge across it; the BPE model
    # would skip it first and merge them. Removing it as a split point does what llama.cpp does.
    untokenized = [char for char in pre_tokenizers.ByteLevel.alphabet() if char not in vocab]
    if untokenized:
        char_class = "".join(f"\\x{{{ord(char):x}}}" for char in sorted(untokenized))
        steps.append(pre_tokenizers.Split(Regex(f"[{char_class}]"), behavior="removed"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


BUILDERS = {SENTENCEPIECE: _sentencepiece_tokenizer, BYTE_LEVEL_BPE: _byte_level_tokenizer}


def build_tokenizer(vocabulary: GGUFVocabulary) -> Tokenizer:
    tokenizer = BUILDERS[vocabulary.model](vocabulary)
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
