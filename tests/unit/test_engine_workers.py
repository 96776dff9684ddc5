"""A worker's log lines keep their level (the worker processes themselves:
tests/e2e/test_engine_workers.py)."""

import json
import logging

from generation.engine.logs import parse_worker_line


def test_a_workers_lines_keep_their_level():
    """Its own records come as JSON lines; the engine's are text, coloured, with Rust's level names;
    anything else (a panic) is a warning."""
    record = json.dumps({"level": "WARNING", "logger": "generation.engine.runner", "message": "seed not applied"})
    assert parse_worker_line(record + "\n") == (logging.WARNING, "seed not applied")
    engine = ("\x1b[2m2026-11-25T17:45:02.207965Z\x1b[0m \x1b[33m WARN\x1b[0m \x1b[2mmistralrs_core::pipeline\x1b[0m"
              "\x1b[2m:\x1b[0m No chat template.\n")
    assert parse_worker_line(engine) == (logging.WARNING, "mistralrs_core::pipeline: No chat template.")
    assert parse_worker_line("thread 'main' panicked at src/lib.rs:1:1\n") == (
        logging.WARNING, "thread 'main' panicked at src/lib.rs:1:1"
    )
