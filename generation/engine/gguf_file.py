"""The header of a GGUF file: its metadata and its tensors' directory, read in well under a
second, and a clear GGUFFileError for a file that is not a whole GGUF.

gguf's own GGUFReader (llama.cpp's reference reader) makes a numpy view of every element
of every metadata array: on Gemma 3's 262,144-token vocabulary it spends 14–16 s of CPU
(at each first load of a GGUF, for its tokenizer). This reads the same layout with
`struct`, whole arrays at once, and takes gguf's names for the value and weight types.

The layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md): magic, version,
tensor count, metadata count; the metadata (key, type, value; arrays typed once); the
tensors (name, dimensions, type, offset); then the tensors' data, aligned.
"""

import mmap
import os
import struct
from dataclasses import dataclass
from math import prod
from pathlib import Path

from gguf import GGML_QUANT_SIZES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGMLQuantizationType, GGUFValueType

SUPPORTED_VERSIONS = (2, 3)  # as gguf's reader: version 1 sized its strings with 32 bits

# The struct format of each fixed-size value type.
SCALAR_FORMATS = {
    GGUFValueType.UINT8: "B", GGUFValueType.INT8: "b", GGUFValueType.UINT16: "H", GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I", GGUFValueType.INT32: "i", GGUFValueType.FLOAT32: "f", GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q", GGUFValueType.INT64: "q", GGUFValueType.FLOAT64: "d",
}


class GGUFFileError(ValueError):
    """The file is not a whole GGUF of a version this reader knows."""


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    shape: tuple[int, ...]
    type: GGMLQuantizationType
    data_offset: int  # from the start of the data section

    @property
    def n_elements(self) -> int:
        return prod(self.shape)

    @property
    def n_bytes(self) -> int:
        block_size, type_size = GGML_QUANT_SIZES[self.type]
        return self.n_elements // block_size * type_size


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    metadata: dict  # key → str, int, float, bool, or a list of them (nested for arrays of arrays)
    tensors: list[GGUFTensor]


class _Cursor:
    """Reads values one after the other from the file's bytes."""

    def __init__(self, data, byte_order: str, offset: int):
        self.data, self.byte_order, self.offset = data, byte_order, offset
        self._length = struct.Struct(byte_order + "Q")  # a string's length: a vocabulary reads 262,144 of them

    def unpack(self, fmt: str) -> tuple:
        layout = struct.Struct(self.byte_order + fmt)
        values = layout.unpack_from(self.data, self.offset)
        self.offset += layout.size
        return values

    def string(self) -> str:
        (length,) = self._length.unpack_from(self.data, self.offset)
        self.offset += self._length.size
        end = self.offset + length
        if end > len(self.data):
            raise GGUFFileError(f"a string of {length} bytes at byte {self.offset} runs past the end of the file")
        text = str(self.data[self.offset:end], "utf-8")
        self.offset = end
        return text

    def value(self, value_type: int):
        if value_type == GGUFValueType.STRING:
            return self.string()
        if value_type == GGUFValueType.ARRAY:
            item_type, count = self.unpack("IQ")
            return self.array(item_type, count)
        return self.unpack(self._format(value_type))[0]

    def array(self, item_type: int, count: int) -> list:
        if item_type in SCALAR_FORMATS:
            return list(self.unpack(f"{count}{self._format(item_type)}"))
        if item_type == GGUFValueType.STRING:
            return [self.string() for _ in range(count)]
        return [self.value(item_type) for _ in range(count)]

    @staticmethod
    def _format(value_type: int) -> str:
        try:
            return SCALAR_FORMATS[GGUFValueType(value_type)]
        except (ValueError, KeyError):
            raise GGUFFileError(f"unknown value type {value_type}") from None


def _read(data) -> GGUFHeader:
    size = len(data)
    if size < 24 or struct.unpack_from("<I", data)[0] != GGUF_MAGIC:
        raise GGUFFileError("not a GGUF file (no GGUF magic number at its start)")
    # A file written on a big-endian machine reads as a version whose low 16 bits are zero.
    byte_order = ">" if struct.unpack_from("<I", data, 4)[0] & 0xFFFF == 0 else "<"
    cursor = _Cursor(data, byte_order, offset=4)
    (version,) = cursor.unpack("I")
    if version not in SUPPORTED_VERSIONS:
        raise GGUFFileError(f"GGUF version {version}; this reader reads versions {SUPPORTED_VERSIONS}")
    tensor_count, metadata_count = cursor.unpack("QQ")
    metadata = {}
    for _ in range(metadata_count):
        key = cursor.string()
        (value_type,) = cursor.unpack("I")
        metadata[key] = cursor.value(value_type)
    tensors = []
    for _ in range(tensor_count):
        name = cursor.string()
        (dimensions,) = cursor.unpack("I")
        shape = cursor.unpack(f"{dimensions}Q")
        raw_type, data_offset = cursor.unpack("IQ")
        try:
            tensor_type = GGMLQuantizationType(raw_type)
        except ValueError:
            raise GGUFFileError(f"tensor {name!r} has an unknown type {raw_type}") from None
        tensors.append(GGUFTensor(name=name, shape=shape, type=tensor_type, data_offset=data_offset))
    alignment = metadata.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
    data_start = -(-cursor.offset // alignment) * alignment
    data_end = max((data_start + tensor.data_offset + tensor.n_bytes for tensor in tensors), default=0)
    if data_end > size:
        raise GGUFFileError(f"the file is truncated: its tensors' data ends at byte {data_end}, the file at "
                            f"byte {size} (an interrupted download or copy?)")
    return GGUFHeader(version=version, metadata=metadata, tensors=tensors)


def read_header(path: str | Path) -> GGUFHeader:
    """The metadata and tensor directory of the GGUF at `path`; GGUFFileError if it is not a
    whole GGUF (too short, another format, cut off, unknown types); OSError if unreadable."""
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:  # which mmap refuses
            raise GGUFFileError("the file is empty")
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                return _read(data)
            except struct.error as exc:  # a value that runs past the end of the file
                raise GGUFFileError(f"the file ends inside its header ({exc})") from None
            except UnicodeDecodeError as exc:
                raise GGUFFileError(f"a string of its header is not UTF-8 ({exc.reason})") from None
