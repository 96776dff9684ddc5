"""A catalog entry's engine settings as one plain value, for the engine.

No Django in here: the value crosses to each model's worker process (generation.engine),
which imports this module without setting Django up.
"""

import re
from dataclasses import dataclass

# The block sizes mistral.rs's paged attention takes (32 is its default).
KV_CACHE_BLOCK_SIZES = (8, 16, 32)
# A KV-cache capacity as mistral.rs reads it (bytes in MiB or GiB, or tokens), or a fraction in (0, 1].
KV_CACHE_CAPACITY = re.compile(r"[1-9][0-9]{0,8}(MiB|GiB|tokens)")
MEMORY_FRACTION = re.compile(r"0?\.[0-9]*[1-9][0-9]*|1(\.0*)?")
KV_CACHE_MEMORY_HELP = (
    "a KV-cache capacity (8GiB, 512MiB, 65536tokens) or the fraction of the GPU's memory for the weights "
    "and the KV cache together (0.45)"
)


def memory_goal(kv_cache_memory: str) -> float | str | None:
    """mistral.rs's `memory_goal` for a KV-cache memory setting (None for ""); ValueError if it is not one."""
    if not kv_cache_memory:
        return None
    if KV_CACHE_CAPACITY.fullmatch(kv_cache_memory):
        return kv_cache_memory
    if MEMORY_FRACTION.fullmatch(kv_cache_memory):
        return float(kv_cache_memory)
    raise ValueError(f"Use {KV_CACHE_MEMORY_HELP}; got {kv_cache_memory!r}.")


@dataclass(frozen=True)
class EngineConfig:
    """Everything that decides how a model is loaded. A change means a reload."""

    model_id: str
    source: str  # "bundled", "gguf_file", "hf_gguf" or "safetensors"
    location: str = ""
    filename: str = ""
    tokenizer_json: str = ""
    context_length: int | None = None
    in_situ_quant: str = ""
    max_seqs: int = 8
    seed: int | None = None
    prefix_cache_n: int = 0
    # Paged attention's KV cache (GPU builds of the engine only): memory_goal's text, "" for
    # the engine's own sizing; tokens per block, None for the engine's.
    kv_cache_memory: str = ""
    kv_cache_block_size: int | None = None
