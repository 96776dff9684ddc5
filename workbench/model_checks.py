"""What the admin checks of a catalog entry's files when it is saved, and reads from them.

An entry that names a file that is not there, that is no GGUF, or that the engine cannot
load, would otherwise be saved and listed, and fail only on its first request. So:

- a GGUF on this machine (bundled, a local file, or one already in the Hugging Face cache)
  is read: it must be a GGUF of an architecture the engine loads, with a tokenizer the
  service can build (the same preparation a load does, done once and cached); what it
  says of itself (architecture, quantization, context length, chat template, special
  tokens) is returned for the admin to show;
- a Hugging Face source that is not in the cache must be reachable, since it is
  downloaded on its first load; with HF_HUB_OFFLINE on, it cannot be, which is said;
- a safetensors directory must hold a config.json, and a tokenizer.json, where one is
  named, must parse.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from huggingface_hub import get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, RepositoryNotFoundError
from tokenizers import Tokenizer

from catalog.models import ModelEntry, validate_repository_id
from generation.engine.gguf_tokenizer import UnsupportedTokenizer
from generation.engine.model_files import SUPPORTED_GGUF_ARCHITECTURES, bundled_gguf, prepare_gguf

logger = logging.getLogger(__name__)

# How long a save waits for Hugging Face to answer whether a file exists.
HUB_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class FileReport:
    """What was found of an entry's weights."""

    path: Path | None = None  # the GGUF on this machine, when it is
    metadata: dict = field(default_factory=dict)  # read from that GGUF
    size_bytes: int | None = None
    note: str = ""  # why nothing was read, when nothing was


def check_files(entry: ModelEntry) -> FileReport:
    """Check the files an entry names; raise ValidationError naming the field at fault.

    The entry's own checks (ModelEntry.full_clean: a file name inside its location, a
    repository id where the source takes one) have passed.
    """
    if entry.tokenizer_json:
        _check_tokenizer_json(entry.tokenizer_json)
    if entry.source == ModelEntry.Source.SAFETENSORS:
        return _check_safetensors(entry.location)
    gguf = _find_gguf(entry)
    if gguf is None:
        return FileReport(note="Not downloaded yet: the file's metadata is read once it is in the cache.")
    return _read_gguf(gguf, field_name="location" if entry.source == ModelEntry.Source.BUNDLED else "filename")


def _find_gguf(entry: ModelEntry) -> Path | None:
    """The entry's GGUF on this machine; None for a reachable Hugging Face file not cached yet."""
    if entry.source == ModelEntry.Source.BUNDLED:
        try:
            return bundled_gguf(entry.location, settings.LLM_MODEL_CACHE_DIR)
        except FileNotFoundError as exc:
            raise ValidationError({"location": str(exc)}) from None
    if entry.source == ModelEntry.Source.GGUF_FILE:
        path = Path(entry.location) / entry.filename
        if not path.is_file():
            field_name = "location" if not Path(entry.location).is_dir() else "filename"
            raise ValidationError({field_name: f"No such file on this server: {path}"})
        return path
    cached = try_to_load_from_cache(entry.location, entry.filename)
    if isinstance(cached, str):
        return Path(cached)
    _check_reachable(entry.location, entry.filename)
    return None


def _check_reachable(repository: str, filename: str) -> None:
    """Raise unless Hugging Face has the file, and this server may download it."""
    if settings.HF_HUB_OFFLINE:
        raise ValidationError({"location": (
            f"{repository}/{filename} is not in the Hugging Face cache, and HF_HUB_OFFLINE is on: put the "
            f"file in the cache (e.g. `hf download {repository} {filename}` with HF_HOME={settings.HF_HOME}), "
            f"or turn HF_HUB_OFFLINE off to let the server download it."
        )})
    try:
        get_hf_file_metadata(hf_hub_url(repository, filename), timeout=HUB_TIMEOUT_SECONDS)
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise ValidationError({"location": f"Hugging Face refuses the repository {repository}: {_first_line(exc)}"})
    except EntryNotFoundError:
        raise ValidationError({"filename": f"The repository {repository} has no file {filename}."}) from None
    except Exception as exc:  # network errors come as several libraries' types
        raise ValidationError({"location": (
            f"Hugging Face could not be reached to check {repository}/{filename} ({_first_line(exc)}). "
            f"Put the file in the Hugging Face cache, or save again once the network is back."
        )}) from None


def _read_gguf(path: Path, *, field_name: str) -> FileReport:
    try:
        prepared = prepare_gguf(path, settings.LLM_MODEL_CACHE_DIR)
    except UnsupportedTokenizer as exc:
        raise ValidationError({field_name: f"The engine cannot be given this GGUF's tokenizer: {exc}"}) from None
    except (ValueError, KeyError, IndexError, OSError) as exc:  # what gguf's reader raises on a bad file
        raise ValidationError({field_name: f"{path.name} is not a readable GGUF file ({_first_line(exc)})."}) from None
    architecture = prepared.metadata.get("architecture")
    if architecture not in SUPPORTED_GGUF_ARCHITECTURES:
        raise ValidationError({field_name: (
            f"{path.name} is a GGUF of architecture {architecture!r}, which the engine does not load "
            f"(it loads {', '.join(SUPPORTED_GGUF_ARCHITECTURES)})."
        )})
    return FileReport(path=path, metadata=prepared.metadata, size_bytes=path.stat().st_size)


def _check_safetensors(location: str) -> FileReport:
    folder = Path(location)
    if folder.is_absolute() or folder.exists():
        if not (folder / "config.json").is_file():
            raise ValidationError({"location": f"No config.json in {folder} on this server."})
        if not any(folder.glob("*.safetensors")):
            raise ValidationError({"location": f"No .safetensors weights in {folder}."})
        return FileReport(note="Safetensors weights: nothing is read from them before a load.")
    try:
        validate_repository_id(location)
    except ValidationError as exc:
        raise ValidationError({"location": f"No directory {folder} on this server. {exc.messages[0]}"}) from None
    if isinstance(try_to_load_from_cache(location, "config.json"), str):
        return FileReport(note="In the Hugging Face cache.")
    _check_reachable(location, "config.json")
    return FileReport(note="Not downloaded yet: it is fetched from Hugging Face on its first load.")


def _check_tokenizer_json(path: str) -> None:
    try:
        Tokenizer.from_file(path)
    except Exception as exc:  # tokenizers raises plain Exceptions for missing and malformed files
        raise ValidationError({"tokenizer_json": f"{path} is not a tokenizer.json that parses ({_first_line(exc)})."})


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
