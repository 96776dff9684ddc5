"""A catalog entry's engine settings as one plain value, for the engine.

No Django in here: the value crosses to each model's worker process (generation.engine),
which imports this module without setting Django up.
"""

from dataclasses import dataclass


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
