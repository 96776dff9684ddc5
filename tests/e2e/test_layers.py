"""The layers of .importlinter hold: a lower layer never imports a higher one, only the
engine's runner imports mistral.rs, and the native, OpenAI and WebSocket APIs do not import
each other. Adding a forbidden import fails this test."""

import subprocess
import sys
from pathlib import Path

from tests.support.server import ROOT


def test_imports_keep_to_the_layers():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout
