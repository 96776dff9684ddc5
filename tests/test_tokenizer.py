"""The exact GGUF tokenizer against llama.cpp's reference ids on the same file."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from tokenizers import Tokenizer

from generation import model_files
from tests.conftest import ROOT, TOKENIZER_CASES


@pytest.fixture(scope="module")
def cases():
    return json.loads(TOKENIZER_CASES.read_text())["cases"]


@pytest.fixture(scope="module")
def built_tokenizer_path(tmp_path_factory):
    """tokenizer.json written by the management command, from the bundled GGUF."""
    gguf = model_files.bundled_gguf(settings.LLM_MODEL_CACHE_DIR)
    output = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    result = subprocess.run(
        [sys.executable, "manage.py", "build_tokenizer", str(gguf), str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SECRET_KEY": "x"},
    )
    assert result.returncode == 0, result.stderr
    assert "262144 tokens" in result.stdout
    return output


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
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SECRET_KEY": "x"},
    )
    assert result.returncode == 1
    assert "Cannot build a tokenizer" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_engine_tokenizes_like_the_reference(bundled_model):
    """The engine loaded with the built tokenizer counts the prompt as llama.cpp does (+ BOS)."""
    # "The capital of France is" is 5 tokens in the reference; the engine adds nothing,
    # the service's prompt carries "<bos>" as text.
    assert bundled_model.count_tokens("<bos>The capital of France is") == 6
