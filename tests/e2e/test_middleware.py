"""The server's ASGI entry point, in a process of its own, serves the event-loop forms of the
middleware (the stack in process: tests/unit/test_middleware.py)."""

import json
import subprocess
import sys

from tests.support.server import ROOT, server_environment


def test_the_asgi_application_serves_the_event_loop_forms(tmp_path):
    # The server's entry point itself, in a process of its own (it starts loading models
    # in the background, which the process's exit cuts short).
    code = "import json, inference_service.asgi; from django.conf import settings; print(json.dumps(settings.MIDDLEWARE))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=server_environment(tmp_path), capture_output=True, text=True,
        check=True,
    )
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert "inference_service.django_middleware.SecurityMiddleware" in served
    assert not [name for name in served if name.startswith(("django.", "django_prometheus."))]
