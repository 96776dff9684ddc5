"""Small GGUF files for tests of what reads them: a real GGUF header and tokenizer, with a
single tensor and no usable weights."""

from pathlib import Path

import numpy as np
from gguf import GGUFWriter

BYTE_TOKENS = [f"<0x{byte:02X}>" for byte in range(256)]


def write_tiny_gguf(path: Path, *, architecture: str = "llama", chat_template: str | None = None) -> Path:
    """A GGUF of the given architecture, with a SentencePiece tokenizer of a few tokens."""
    writer = GGUFWriter(str(path), architecture)
    writer.add_context_length(128)
    tokens = ["<unk>", "<s>", "</s>", "▁a", "a", "b", *BYTE_TOKENS]
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types([2, 3, 3, 1, 1, 1] + [6] * len(BYTE_TOKENS))  # unknown, control, normal, byte
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_space_prefix(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
