"""The engine runner's pieces that need no model: the prefill gate, leading whitespace, the
KV-cache settings as the engine takes them, and the summary of an engine error that clients
see (the engine with the real bundled model: tests/e2e/test_engine.py)."""

import logging
import threading

import pytest

from catalog.engine_settings import EngineConfig, memory_goal
from generation.engine.types import engine_error_summary
from generation.engine.runner import PrefillGate, kv_cache_options, restore_leading_whitespace


def test_the_prefill_gate_keeps_apart_only_prompts_of_the_same_length():
    gate, running = PrefillGate(), threading.Event()
    assert gate.enter(12, running) and gate.enter(13, running)  # other lengths go in together
    admitted = threading.Event()
    waiting = threading.Thread(target=lambda: gate.enter(12, running) and admitted.set())
    waiting.start()
    assert not admitted.wait(0.2)
    gate.leave(12)
    assert admitted.wait(5)
    waiting.join()


def test_a_request_cancelled_at_the_prefill_gate_gives_up_and_is_not_admitted():
    gate, cancelled = PrefillGate(), threading.Event()
    assert gate.enter(7, threading.Event())
    outcome = []
    waiting = threading.Thread(target=lambda: outcome.append(gate.enter(7, cancelled)))
    waiting.start()
    cancelled.set()
    waiting.join(5)
    assert outcome == [False]
    gate.leave(7)
    assert gate.enter(7, threading.Event())  # the cancelled one never held the length


def test_restore_leading_whitespace_cases():
    assert restore_leading_whitespace("the", " the") == " the"
    assert restore_leading_whitespace("", "    ") == "    "
    assert restore_leading_whitespace("the", "the") == "the"
    assert restore_leading_whitespace("x", None) == "x"
    assert restore_leading_whitespace("é", "<0xC3>") == "é"  # byte tokens are left alone


def test_engine_errors_reach_clients_without_backtraces_or_paths():
    error = RuntimeError("Invalid sampling probability: NaN.\nstack backtrace:\n   0: mistralrs_core::sampler")
    assert engine_error_summary(error) == "Invalid sampling probability: NaN."
    assert engine_error_summary(OSError("cannot open /srv/models/secret/m.gguf")) == "cannot open m.gguf"


@pytest.mark.parametrize("setting, goal", [
    ("", None), ("8GiB", "8GiB"), ("512MiB", "512MiB"), ("65536tokens", "65536tokens"), ("0.45", 0.45), ("1", 1.0),
])
def test_kv_cache_memory_as_mistral_rs_reads_it(setting, goal):
    assert memory_goal(setting) == goal


@pytest.mark.parametrize("setting", ["0", "0.0", "1.5", "-0.2", "nan", "8GB", "8 GiB", "0GiB", "1e-1", "lots"])
def test_kv_cache_memory_that_mistral_rs_would_refuse_is_refused(setting):
    with pytest.raises(ValueError, match="Use a KV-cache capacity"):
        memory_goal(setting)


def test_kv_cache_settings_become_paged_attention_arguments_on_an_accelerator_build_only(caplog):
    config = EngineConfig(model_id="m", source="bundled", kv_cache_memory="0.45", kv_cache_block_size=16)
    assert kv_cache_options(config, accelerator=True) == {"memory_goal": 0.45, "pa_blk_size": 16}
    partial = EngineConfig(model_id="m", source="bundled", kv_cache_memory="8GiB")
    assert kv_cache_options(partial, accelerator=True) == {"memory_goal": "8GiB", "pa_blk_size": None}
    with caplog.at_level(logging.WARNING, logger="generation.engine.runner"):
        # A CPU build's engine refuses a memory goal ("an explicit memory goal requires supported paged
        # attention"): the settings are left out, and the log says so.
        assert kv_cache_options(config, accelerator=False) == {}
    assert "not applied: this CPU build of the engine has no paged attention" in caplog.text
    caplog.clear()
    default = EngineConfig(model_id="m", source="bundled")
    assert kv_cache_options(default, accelerator=True) == kv_cache_options(default, accelerator=False) == {}
    assert not caplog.text  # nothing set, nothing to say
