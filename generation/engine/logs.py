"""What a worker process writes, logged in the web process.

The worker's own log records come as JSON lines (generation.engine.worker), the engine's
as its text lines; each is logged again here with its level, tagged with the model.
"""

import json
import logging
import re
from typing import BinaryIO

worker_logger = logging.getLogger("generation.engine.worker")

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_ENGINE_LINE = re.compile(r"^\S+\s+(TRACE|DEBUG|INFO|WARN|ERROR)\s+(.*)$")  # mistral.rs: time, level, text
_LEVELS = {"TRACE": logging.DEBUG, "WARN": logging.WARNING, **logging.getLevelNamesMapping()}


def forward_logs(output: BinaryIO, *, model_id: str, pid: int) -> None:
    """Log each line the process writes, until it ends (run it in a thread of its own)."""
    fields = {"model": model_id, "worker_pid": pid}
    with output:
        for raw in output:
            level, text = parse_worker_line(raw.decode(errors="replace"))
            if text:
                worker_logger.log(level, "[%s] %s", model_id, text, extra=fields)


def parse_worker_line(line: str) -> tuple[int, str]:
    """The level and text of a line from a worker: one of its JSON records, or the engine's own line.

    Anything else a worker writes (a Rust panic, a traceback that escaped logging) is a warning.
    """
    line = _ANSI_ESCAPE.sub("", line).rstrip()
    if line.startswith("{"):
        try:
            record = json.loads(line)
            return _LEVELS.get(record["level"], logging.INFO), record["message"]
        except (ValueError, KeyError, TypeError):
            pass
    if match := _ENGINE_LINE.match(line):
        return _LEVELS[match.group(1)], match.group(2)
    return logging.WARNING, line
