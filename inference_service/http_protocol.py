"""Daphne as this service runs it: the request body limit (LLM_MAX_REQUEST_BYTES) enforced
by the HTTP protocol while the body arrives, not by Django after it arrived; and a graceful
drain before the server stops (`Server` below, `generation.shutdown`).

Why this exists: Twisted's `http.Request`, which Daphne's `WebRequest` extends, receives
the whole body (into a temporary file once it is large) before Daphne starts the ASGI
application. A middleware that answers 413 by Content-Length therefore only runs once the
upload has been received: a 300 MB POST was written to disk before its 413 (or its 401).
A chunked body has no Content-Length, so nothing limited it, and Django, which reads
Content-Length bytes, received it as an empty body.

`LimitedWebRequest` hooks the two calls the HTTP channel makes while receiving a request:

- `gotLength`, right after the headers: a Content-Length over the limit is answered 413 at
  once, without reading the body (the client may be waiting for a 100 Continue, or may
  never send it);
- `handleContentChunk`, for each piece of body: a chunked body is counted as it arrives and
  answered 413 as soon as it passes the limit; nothing more is buffered.

A chunked body within the limit reaches Django as an ordinary body: the channel has already
decoded it, so `requestReceived` replaces Transfer-Encoding with its Content-Length.

The 413 is JSON in the shape of the API that was called (`generation.api.errors`). It has
`Connection: close`: the connection is half-closed after it on plain TCP (the client reads
the answer, then the end of the stream), what the client still sends is read and dropped for
`LINGER_SECONDS` (so that a client which sends its whole body before reading gets the
413 rather than a connection reset), then the connection is closed. The refused request
never reaches Django, so it has no request id and no entry in the request log; it is
logged here as a warning.

How it is plugged in: `manage.py serve` runs Daphne through `CommandLineInterface` below,
whose `Server` uses `HTTPFactory`, whose channels build `LimitedWebRequest`s. Daphne's
`Server.run` builds its `HTTPFactory` itself, with no parameter for it; the one place that
works around that is `Server.http_factory`. It covers every endpoint Daphne listens on,
plain TCP and TLS alike (HTTP/2 is not enabled: Twisted's http2 extra is not installed).
"""

import asyncio
import json
import logging
from io import BytesIO
from urllib.parse import unquote

from daphne import cli as daphne_cli
from daphne import http_protocol as daphne_http
from daphne import server as daphne_server
from django.conf import settings
from twisted.internet import defer
from twisted.internet.interfaces import IHalfCloseableDescriptor
from twisted.web.http_headers import Headers

from generation.api.errors import ApiError, error_body_for_path
from generation.shutdown import drain

logger = logging.getLogger(__name__)

# How long a refused connection keeps reading (and dropping) what the client still sends.
LINGER_SECONDS = 2.0


class LimitedWebRequest(daphne_http.WebRequest):
    """Daphne's request, with the body limit applied while the body is received."""

    # Twisted parses form bodies into `args`, which Daphne never reads, and answers a
    # multipart body it cannot parse with a bare text 400 before Django sees it. Django and
    # the API's parsers decide what a body is (a JSON 415 for a form sent to the API).
    _parsePOSTFormSubmission = False

    def __init__(self, *args, **kwargs):
        self._refused = False
        self._chunked = False
        self._received = 0
        self._linger = None
        super().__init__(*args, **kwargs)

    @property
    def body_limit(self) -> int:
        return settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    def gotLength(self, length):
        """Called by the channel once the headers are in; `length` is None for a chunked body."""
        if length is not None and length > self.body_limit:
            self.content = BytesIO()  # nothing of the body is kept
            self._refuse(f"The request body is {length} bytes; the limit is {self.body_limit}.")
            return
        self._chunked = length is None
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self._refused:
            return  # what a refused client still sends is dropped
        self._received += len(data)
        if self._received > self.body_limit:
            self.content.close()
            self.content = BytesIO()
            self._refuse(f"The request body is over the limit of {self.body_limit} bytes.")
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        """Called by the channel once the whole body is in; hands the request to Daphne."""
        if self._refused:
            return  # answered already; never reaches the application
        if self._chunked:
            # The channel has decoded the chunks: Django reads Content-Length bytes.
            self.requestHeaders.removeHeader(b"transfer-encoding")
            self.requestHeaders.setRawHeaders(b"content-length", [str(self.content.tell()).encode("ascii")])
        super().requestReceived(command, path, version)

    def _target_path(self) -> str:
        # Before `requestReceived` the request does not know its own path yet; the channel
        # keeps the request line's target in `_path` while the request is being received.
        target = getattr(self.channel, "_path", b"") or b""
        return unquote(target.split(b"?", 1)[0].decode("ascii", "replace"))

    def _refuse(self, message: str) -> None:
        """Answer 413 now, before (the rest of) the body, and close the connection."""
        self._refused = True
        path = self._target_path()
        logger.warning("refused a request body over the limit on %s: %s", path, message)
        body = json.dumps(error_body_for_path(path, ApiError(413, "request_too_large", message))).encode()
        # No "100 Continue" after this answer: the channel sends one after `gotLength`
        # when the client asked for it.
        self.requestHeaders.removeHeader(b"expect")
        headers = Headers(
            {
                b"content-type": [b"application/json"],
                b"content-length": [str(len(body)).encode("ascii")],
                b"connection": [b"close"],
            }
        )
        channel = self.channel
        channel.writeHeaders(b"HTTP/1.1", b"413", b"Content Too Large", headers)
        channel.write(body)
        transport = channel.transport
        # The channel is the transport's producer (it pauses reading while a request is
        # handled); without it, nothing resumes or pauses reading behind our back, and a
        # half-close is not held up waiting for it.
        transport.unregisterProducer()
        # Plain TCP: the answer, then the end of the stream. Not under TLS: its transport
        # claims the TCP connection's interfaces, and would end the stream under the TLS
        # layer before the answer; TLS ends when the connection is closed below.
        if not channel.isSecure() and IHalfCloseableDescriptor.providedBy(transport):
            transport.loseWriteConnection()
        self._linger = channel.callLater(LINGER_SECONDS, transport.loseConnection)

    def connectionLost(self, reason):
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)


class HTTPFactory(daphne_http.HTTPFactory):
    """Daphne's factory, whose channels build `LimitedWebRequest`s."""

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = LimitedWebRequest
        return protocol


class Server(daphne_server.Server):
    """Daphne's server with `HTTPFactory` above, and a graceful drain before it stops.

    `Server.run` builds `daphne.http_protocol.HTTPFactory(self)` and stores it in
    `self.http_factory` before it listens with it; this attribute stores ours instead.

    On SIGTERM (or SIGINT) Twisted runs its "before shutdown" triggers and waits for the
    Deferreds they return while it still serves connections. Daphne's trigger,
    `kill_all_applications`, cancels every request at once; here it first waits for
    `generation.shutdown.drain` (LLM_SHUTDOWN_GRACE_SECONDS at most).
    """

    def kill_all_applications(self):
        drained = defer.Deferred.fromFuture(
            asyncio.ensure_future(drain(settings.LLM_SHUTDOWN_GRACE_SECONDS, open_responses=self._open_responses))
        )
        drained.addErrback(lambda failure: logger.error("the drain failed: %s", failure.getErrorMessage()))
        drained.addCallback(lambda _: super(Server, self).kill_all_applications())
        return drained

    def _open_responses(self) -> int:
        """HTTP requests whose answer is not sent yet (WebSockets live on, and are not counted)."""
        return sum(
            1
            for protocol, details in list(self.connections.items())
            if isinstance(protocol, daphne_http.WebRequest)
            and details.get("application_instance") is not None
            and not details["application_instance"].done()
        )

    @property
    def http_factory(self):
        return self._limited_http_factory

    @http_factory.setter
    def http_factory(self, factory):
        self._limited_http_factory = factory if isinstance(factory, HTTPFactory) else HTTPFactory(self)


class CommandLineInterface(daphne_cli.CommandLineInterface):
    """Daphne's command line, running `Server` above."""

    server_class = Server
