"""The engine runner's pieces that need no model: the prefill gate, leading whitespace, and
the summary of an engine error that clients see (the engine with the real bundled model:
tests/e2e/test_engine.py)."""

import threading

from generation.engine.types import engine_error_summary
from generation.engine.runner import PrefillGate, restore_leading_whitespace


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
