"""HTTP over a raw socket, where an HTTP client would hide what is tested: when the server
answers, and how it ends the connection."""

import socket
import ssl
from urllib.parse import urlsplit

# Without the limits at the protocol layer, a test would wait for an answer that never comes.
SOCKET_TIMEOUT = 10


def connect(url: str, context: ssl.SSLContext | None = None) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=SOCKET_TIMEOUT)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname=parts.hostname)
    return sock


def request_head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode("ascii")


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """Status, headers (lower-case names) and body of one response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            raise AssertionError(f"the connection closed before a whole response: {data!r}")
        data += piece
    head, body = data.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return int(status_line.split(" ")[1]), headers, body[:length]


def assert_closed(sock: socket.socket) -> None:
    """The server ends the connection after the refusal (no reset: what we sent is drained)."""
    assert sock.recv(65536) == b""
