"""The GGUF header reader (generation/engine/gguf_file.py) against gguf's reference reader, on
files that gguf's writer makes with every value type, both byte orders and quantized tensors;
and every way a file can fail to be a whole GGUF, each a GGUFFileError that says why."""

import struct

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFEndian, GGUFReader, GGUFWriter

from generation.engine.gguf_file import GGUFFileError, read_header
from tests.support.tiny_gguf import write_tiny_gguf

METADATA = {
    "test.uint8": ("add_uint8", 200), "test.int8": ("add_int8", -100), "test.uint16": ("add_uint16", 60000),
    "test.int16": ("add_int16", -30000), "test.uint32": ("add_uint32", 4_000_000_000),
    "test.int32": ("add_int32", -2_000_000_000), "test.float32": ("add_float32", 0.1),
    "test.uint64": ("add_uint64", 2**63 + 5), "test.int64": ("add_int64", -(2**62)),
    "test.float64": ("add_float64", 0.1), "test.bool": ("add_bool", True),
    "test.string": ("add_string", "héllo ▁ 世界"), "test.empty_string": ("add_string", ""),
    "test.ints": ("add_array", [1, -2, 3]), "test.floats": ("add_array", [0.5, -1.25]),
    "test.strings": ("add_array", ["a", "", "ü▁"]), "test.bools": ("add_array", [True, False]),
    "test.nested": ("add_array", [[1, 2], [3]]),
}


def write_gguf(path, *, endianess=GGUFEndian.LITTLE, metadata=METADATA):
    writer = GGUFWriter(str(path), "llama", endianess=endianess)
    for key, (method, value) in metadata.items():
        getattr(writer, method)(key, value)
    writer.add_tensor("f32", np.arange(12, dtype=np.float32).reshape(3, 4))
    writer.add_tensor("f16", np.ones((2, 5), dtype=np.float16))
    # A quantized tensor: 2 rows of 64 weights in Q8_0 (blocks of 32 weights in 34 bytes).
    writer.add_tensor("q8", np.zeros((2, 68), dtype=np.uint8), raw_dtype=GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("endianess", [GGUFEndian.LITTLE, GGUFEndian.BIG])
def test_the_header_reads_as_gguf_s_own_reader_reads_it(tmp_path, endianess):
    path = write_gguf(tmp_path / "model.gguf", endianess=endianess)
    reference = GGUFReader(str(path))
    header = read_header(path)

    assert header.version == 3
    expected = {key: field.contents() for key, field in reference.fields.items() if not key.startswith("GGUF.")}
    assert expected.pop("test.nested") == [1, 2, 3]  # gguf's reader flattens an array of arrays
    assert {key: value for key, value in header.metadata.items() if key != "test.nested"} == expected
    assert header.metadata["test.uint64"] == 2**63 + 5 and header.metadata["test.string"] == "héllo ▁ 世界"
    assert header.metadata["test.float32"] == pytest.approx(0.1) and header.metadata["test.nested"] == [[1, 2], [3]]
    assert [(t.name, t.shape, t.type, t.n_elements, t.n_bytes) for t in header.tensors] == [
        (t.name, tuple(int(d) for d in t.shape), t.tensor_type, int(t.n_elements), int(t.n_bytes))
        for t in reference.tensors
    ]
    assert [t.n_bytes for t in header.tensors] == [48, 20, 136]


def test_a_tokenizer_s_arrays_read_whole(tmp_path):
    header = read_header(write_tiny_gguf(tmp_path / "tiny.gguf"))
    tokens = header.metadata["tokenizer.ggml.tokens"]
    assert tokens[:6] == ["<unk>", "<s>", "</s>", "▁a", "a", "b"] and tokens[-1] == "<0xFF>"
    assert header.metadata["tokenizer.ggml.token_type"][:6] == [2, 3, 3, 1, 1, 1]
    assert header.metadata["tokenizer.ggml.scores"] == [0.0] * len(tokens)


@pytest.fixture
def whole(tmp_path):
    return write_gguf(tmp_path / "whole.gguf").read_bytes()


def cut_at(tmp_path, data: bytes, size: int):
    path = tmp_path / f"cut-{size}.gguf"
    path.write_bytes(data[:size])
    return path


def test_a_file_cut_anywhere_is_a_clear_error(tmp_path, whole):
    # The writer pads each tensor's data to 32 bytes: the last one's 136 bytes end 24 bytes before the end.
    data_end = len(whole) - 24
    for size in (1, 8, 23, 24, 40, 100, 300, 500, 700, data_end - 200, data_end - 1):
        with pytest.raises(GGUFFileError) as error:
            read_header(cut_at(tmp_path, whole, size))
        assert any(words in str(error.value) for words in ("not a GGUF", "ends inside its header", "runs past the end",
                                                           "is truncated")), (size, str(error.value))


def test_a_file_cut_in_its_weights_says_it_is_truncated(tmp_path, whole):
    with pytest.raises(GGUFFileError, match=f"is truncated: .* the file at byte {len(whole) - 100} "):
        read_header(cut_at(tmp_path, whole, len(whole) - 100))


@pytest.mark.parametrize(("content", "message"), [
    (b"", "the file is empty"),
    (b"PK\x03\x04" + bytes(60), "not a GGUF file"),
    (b"GGUF" + struct.pack("<IQQ", 1, 0, 0), "GGUF version 1"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<I", 99), "unknown value type 99"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<IQ", 8, 2) + b"\xff\xfe",
     "not UTF-8"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 6, 2**60),
     "ends inside its header"),
    (b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 1) + b"t" + struct.pack("<IQIQ", 1, 4, 999, 0),
     "tensor 't' has an unknown type 999"),
])
def test_what_is_not_a_gguf_is_refused_with_the_reason(tmp_path, content, message):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(GGUFFileError, match=message):
        read_header(path)


def test_a_file_without_tensors_is_whole_and_an_empty_array_reads_empty(tmp_path):
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 4, 0))
    assert read_header(path).metadata == {"k": []} and read_header(path).tensors == []
