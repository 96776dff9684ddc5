"""The image's HEALTHCHECK: GET /health/live on this container's own port.

It follows the settings the server itself reads: the port (LLM_INFERENCE_PORT), HTTPS when
Daphne terminates TLS (LLM_TLS_CERT_FILE), and a Host header that DJANGO_ALLOWED_HOSTS
accepts (otherwise Django answers 400 and the container would be reported unhealthy).
Kubernetes ignores it; its probes are in deploy/base/deployment.yaml.
"""

import os
import ssl
import sys
import urllib.request


def host_header() -> str:
    allowed = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(",") if h.strip()]
    for preferred in ("localhost", "127.0.0.1", "*"):
        if preferred in allowed:
            return "localhost" if preferred == "*" else preferred
    if not allowed:
        return "localhost"
    first = allowed[0]
    # ".example.com" allows any subdomain of example.com.
    return "healthcheck" + first if first.startswith(".") else first


def main() -> int:
    port = os.environ.get("LLM_INFERENCE_PORT", "").strip() or "8091"
    tls = bool(os.environ.get("LLM_TLS_CERT_FILE", "").strip())
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/health/live"
    context = None
    if tls:  # our own certificate, for another name than 127.0.0.1: liveness only
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, headers={"Host": host_header()})
    try:
        with urllib.request.urlopen(request, timeout=4, context=context) as response:
            return 0 if response.status == 200 else 1
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        print(f"healthcheck {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
