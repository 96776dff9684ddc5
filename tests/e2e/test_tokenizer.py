"""The exact GGUF tokenizers against llama.cpp's reference ids on the same files: Gemma 3
(SentencePiece) and SmolLM2 (GPT-2-style byte-level BPE)."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from gguf import GGUFReader
from tokenizers import Tokenizer

from generation.engine import model_files
from generation.engine.gguf_file import read_header
from generation.engine.gguf_tokenizer import TOKEN_CONTROL, read_vocabulary
from catalog.chat_templates import SMOLLM2_CHAT_TEMPLATE
from tests.support.server import ROOT, SMOLLM2_TOKENIZER_CASES, TOKENIZER_CASES


def build_with_command(gguf, output, expected_tokens: int):
    result = subprocess.run(
        [sys.executable, "manage.py", "build_tokenizer", str(gguf), str(output)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SECRET_KEY": "x"},
    )
    assert result.returncode == 0, result.stderr
    assert f"{expected_tokens} tokens" in result.stdout
    return output


@pytest.fixture(scope="module")
def cases():
    return json.loads(TOKENIZER_CASES.read_text())["cases"]


@pytest.fixture(scope="module")
def built_tokenizer_path(tmp_path_factory):
    """tokenizer.json written by the management command, from the bundled GGUF."""
    gguf = model_files.bundled_gguf(model_files.GEMMA_PACKAGE, settings.LLM_MODEL_CACHE_DIR)
    return build_with_command(gguf, tmp_path_factory.mktemp("tokenizer") / "tokenizer.json", 262144)


def test_every_reference_case_encodes_to_llama_cpp_ids(built_tokenizer_path, cases):
    tokenizer = Tokenizer.from_file(str(built_tokenizer_path))
    mismatches = [
        case["text"] for case in cases if tokenizer.encode(case["text"], add_special_tokens=False).ids != case["ids"]
    ]
    assert len(cases) == 400
    assert mismatches == []


def test_every_reference_case_decodes_back_to_its_text(built_tokenizer_path, cases):
    tokenizer = Tokenizer.from_file(str(built_tokenizer_path))
    assert [case["text"] for case in cases if tokenizer.decode(case["ids"], skip_special_tokens=False) != case["text"]] == []


def test_special_tokens_and_space_runs(built_tokenizer_path):
    tokenizer = Tokenizer.from_file(str(built_tokenizer_path))
    assert tokenizer.encode("<bos>The capital", add_special_tokens=False).ids[0] == 2
    # Runs of spaces are single tokens (ids 138.. are 2.. literal spaces), split out before the words.
    assert tokenizer.encode("a   b", add_special_tokens=False).tokens == ["a", "   ", "b"]


def test_build_tokenizer_reports_a_missing_file_clearly(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "build_tokenizer", str(tmp_path / "missing.gguf"), str(tmp_path / "t.json")],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SECRET_KEY": "x"},
    )
    assert result.returncode == 1
    assert "Cannot build a tokenizer" in result.stderr
    assert "Traceback" not in result.stderr


async def test_the_engine_tokenizes_like_the_reference(bundled_model):
    """The engine loaded with the built tokenizer counts the prompt as llama.cpp does (+ BOS)."""
    # "The capital of France is" is 5 tokens in the reference; the engine adds nothing,
    # the service's prompt carries "<bos>" as text.
    assert await bundled_model.count_tokens("<bos>The capital of France is") == 6


# SmolLM2 135M Instruct: a GPT-2-style byte-level BPE GGUF (pre-tokenizer "smollm").


@pytest.fixture(scope="module")
def smollm2_gguf():
    return model_files.bundled_gguf(model_files.SMOLLM2_PACKAGE, settings.LLM_MODEL_CACHE_DIR)


@pytest.fixture(scope="module")
def smollm2_vocabulary(smollm2_gguf):
    return read_vocabulary(smollm2_gguf)


@pytest.fixture(scope="module")
def smollm2_cases():
    return json.loads(SMOLLM2_TOKENIZER_CASES.read_text())["cases"]


@pytest.fixture(scope="module")
def smollm2_tokenizer(smollm2_gguf, tmp_path_factory):
    """The tokenizer.json written by the management command, loaded back."""
    output = build_with_command(smollm2_gguf, tmp_path_factory.mktemp("smollm2") / "tokenizer.json", 49152)
    return Tokenizer.from_file(str(output))


def first_mismatches(mismatches: list[str], total: int) -> str:
    return f"{len(mismatches)} of {total} cases differ; the first: " + "\n".join(mismatches[:5])


def test_every_smollm2_reference_case_encodes_to_llama_cpp_ids(smollm2_tokenizer, smollm2_vocabulary, smollm2_cases):
    # The reference did not parse special tokens, which only agrees with this tokenizer
    # (it splits them out, as the service's prompts need) while no case contains one.
    control = [
        token
        for token, kind in zip(smollm2_vocabulary.tokens, smollm2_vocabulary.token_types)
        if kind == TOKEN_CONTROL
    ]
    assert [case["text"] for case in smollm2_cases if any(token in case["text"] for token in control)] == []

    mismatches = []
    for case in smollm2_cases:
        ids = smollm2_tokenizer.encode(case["text"], add_special_tokens=False).ids
        if ids != case["ids"]:
            mismatches.append(f"{case['text'][:80]!r}: {ids[:20]} instead of {case['ids'][:20]}")
    assert len(smollm2_cases) == 400
    assert not mismatches, first_mismatches(mismatches, len(smollm2_cases))


def test_every_smollm2_reference_case_decodes_back_to_its_text(smollm2_tokenizer, smollm2_cases):
    mismatches = []
    for case in smollm2_cases:
        text = smollm2_tokenizer.decode(case["ids"], skip_special_tokens=False)
        if text != case["text"]:
            mismatches.append(f"{case['text'][:80]!r} decoded as {text[:80]!r}")
    assert not mismatches, first_mismatches(mismatches, len(smollm2_cases))


def test_smollm2_vocabulary_matches_the_gguf_at_every_id(smollm2_tokenizer, smollm2_vocabulary):
    tokens = smollm2_vocabulary.tokens
    assert smollm2_tokenizer.get_vocab_size(with_added_tokens=True) == len(tokens) == 49152
    assert [smollm2_tokenizer.id_to_token(token_id) for token_id in range(len(tokens))] == tokens
    assert smollm2_vocabulary.metadata == {
        "architecture": "llama",
        "context_length": 8192,
        "vocab_size": 49152,
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "add_bos_token": False,
        "chat_template": SMOLLM2_CHAT_TEMPLATE,
        "name": "Smollm2 135M 8k Lc100K Mix1 Ep2",
        "size_label": "135M",
        "quantization": "Q4_1",
        "parameters": 134515008,
        "end_of_turn_token": None,
        "end_of_message_token": None,
    }


def test_smollm2_special_tokens_are_split_out_and_decoded(smollm2_tokenizer):
    encoding = smollm2_tokenizer.encode("<|im_start|>user\nHi 2024<|im_end|>", add_special_tokens=False)
    # Control tokens are single ids; digits are split one by one ("smollm" pre-tokenizer).
    assert encoding.tokens == ["<|im_start|>", "user", "Ċ", "Hi", "Ġ", "2", "0", "2", "4", "<|im_end|>"]
    assert encoding.ids[0] == 1 and encoding.ids[-1] == 2
    assert smollm2_tokenizer.decode(encoding.ids, skip_special_tokens=False) == "<|im_start|>user\nHi 2024<|im_end|>"


def test_smollm2_drops_a_byte_without_a_token_as_llama_cpp_does(smollm2_tokenizer):
    # No token is "\x04": llama.cpp drops it after merging, so "(" and ")" stay apart
    # although "()" is a token (llama.cpp's BPE loop, not a reference case).
    assert smollm2_tokenizer.encode("()", add_special_tokens=False).tokens == ["()"]
    assert smollm2_tokenizer.encode("(\x04)", add_special_tokens=False).tokens == ["(", ")"]
    assert smollm2_tokenizer.encode("a\x04 b", add_special_tokens=False).tokens == ["a", "Ġb"]


def test_the_smollm2_header_reads_as_gguf_s_own_reader_reads_it(smollm2_gguf):
    # gguf's reader takes seconds on this file (about 27 s on Gemma's: not compared here).
    reference = GGUFReader(str(smollm2_gguf))
    header = read_header(smollm2_gguf)
    assert header.metadata == {key: field.contents() for key, field in reference.fields.items()
                               if not key.startswith("GGUF.")}
    assert [(tensor.name, tensor.shape, tensor.n_bytes) for tensor in header.tensors] == [
        (tensor.name, tuple(int(d) for d in tensor.shape), int(tensor.n_bytes)) for tensor in reference.tensors
    ]
