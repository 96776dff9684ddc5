"""What is known of a model file before any load: the preparation of a GGUF (its tokenizer and
metadata) found on this machine without downloading, assembling or building anything."""

import os

from generation.engine import model_files
from generation.engine.types import ChatFormat
from tests.support.tiny_gguf import write_tiny_gguf

TEMPLATE = "{{ bos_token }}{{ messages[0].content }}"


def find(cache_dir, source="gguf_file", location="", filename=""):
    return model_files.prepared_gguf(source=source, location=str(location), filename=filename, cache_dir=cache_dir)


def test_a_gguf_s_preparation_is_found_once_it_has_been_prepared(tmp_path):
    gguf = write_tiny_gguf(tmp_path / "tiny.gguf", chat_template=TEMPLATE)
    cache_dir = tmp_path / "cache"
    assert find(cache_dir, location=tmp_path, filename="tiny.gguf") is None  # not prepared: nothing is built
    assert not cache_dir.exists()
    prepared = model_files.prepare_gguf(gguf, cache_dir)
    assert find(cache_dir, location=tmp_path, filename="tiny.gguf") == prepared
    assert prepared.chat_format == ChatFormat(TEMPLATE, "<s>", "</s>")


def test_a_file_without_a_template_has_no_chat_format(tmp_path):
    gguf = write_tiny_gguf(tmp_path / "plain.gguf")
    model_files.prepare_gguf(gguf, tmp_path / "cache")
    prepared = find(tmp_path / "cache", location=tmp_path, filename="plain.gguf")
    assert prepared is not None and prepared.chat_format is None


def test_a_file_replaced_in_place_is_not_taken_for_the_one_prepared(tmp_path):
    gguf = write_tiny_gguf(tmp_path / "tiny.gguf", chat_template=TEMPLATE)
    model_files.prepare_gguf(gguf, tmp_path / "cache")
    assert find(tmp_path / "cache", location=tmp_path, filename="tiny.gguf") is not None
    write_tiny_gguf(gguf, chat_template=TEMPLATE + "!")
    stat = gguf.stat()
    os.utime(gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a later time, whatever the clock's grain
    assert find(tmp_path / "cache", location=tmp_path, filename="tiny.gguf") is None
    assert model_files.prepare_gguf(gguf, tmp_path / "cache").chat_template == TEMPLATE + "!"


def test_nothing_is_found_where_no_file_is_on_this_machine(tmp_path):
    assert find(tmp_path, location=tmp_path, filename="missing.gguf") is None
    assert find(tmp_path, source="safetensors", location=tmp_path) is None
    assert find(tmp_path, source="bundled", location="no-such-package") is None
    assert find(tmp_path, source="hf_gguf", location="nobody/nothing", filename="x.gguf") is None
    assert find(tmp_path, source="hf_gguf", location="not a repository id", filename="x.gguf") is None
    # The bundled Gemma is assembled by its first load, not by a look for its preparation.
    assert find(tmp_path, source="bundled", location=model_files.GEMMA_PACKAGE) is None
    assert not (tmp_path / "bundled").exists()
