"""Daphne as this service runs it: what the HTTP protocol refuses before a request reaches
Django (a body over LLM_MAX_REQUEST_BYTES, a client too slow to send its request, a
connection past LLM_MAX_CONNECTIONS), and a graceful drain before the server stops
(`Server` below, `generation.lifecycle.shutdown`).

The body limit. Twisted's `http.Request`, which Daphne's `WebRequest` extends, receives
the whole body (into a temporary file once it is large) before Daphne starts the ASGI
application. A middleware that answers 413 by Content-Length therefore only runs once the
upload has been received: a 300 MB POST was written to disk before its 413 (or its 401).
A chunked body has no Content-Length, so nothing limited it, and Django, which reads
Content-Length bytes, received it as an empty body. `LimitedWebRequest` hooks the two calls
the HTTP channel makes while receiving a request:

- `gotLength`, right after the headers: a Content-Length over the limit is answered 413 at
  once, without reading the body (the client may be waiting for a 100 Continue, or may
  never send it);
- `handleContentChunk`, for each piece of body: a chunked body is counted as it arrives and
  answered 413 as soon as it passes the limit; nothing more is buffered.

A chunked body within the limit reaches Django as an ordinary body: the channel has already
decoded it, so `requestReceived` replaces Transfer-Encoding with its Content-Length.

Slow clients. Twisted's only limit is an idle timeout (60 s without a byte), which a client
sending a byte now and then never meets: such half-sent requests piled up without end.
`LimitedHTTPChannel` gives each request deadlines: its headers within
LLM_HEADER_TIMEOUT_SECONDS (counted from the connection's start for its first request,
from the first byte of the next one on a kept-alive connection, so that an idle keep-alive
connection is left to Twisted's idle timeout), its body within LLM_BODY_TIMEOUT_SECONDS
after the headers. No deadline runs once a request is whole: a response that streams for
minutes, and a connection upgraded to a WebSocket, are not cut. A deadline passed is
answered 408 (a response can always still be sent: none is under way while a request is
received), as is Twisted's idle timeout in the middle of a request.

The connection cap. `HTTPFactory` counts its open connections (WebSockets included: the
count is kept by a wrapper around each connection, which stays when Daphne hands the
connection to its WebSocket protocol). Past LLM_MAX_CONNECTIONS, `PROBE_HEADROOM` more are
accepted for health probes: a request under /health/ is served (and the connection closed
after it), any other is answered 503 with Retry-After. Past those, a connection is closed
as soon as it is accepted.

Every refusal (413, 408, 503) is JSON in the shape of the API that was called
(`generation.api.errors`), with `Connection: close`: the connection is half-closed after it
on plain TCP (the client reads the answer, then the end of the stream), what the client
still sends is read and dropped for `LINGER_SECONDS` (so that a client which sends its whole
body before reading gets the answer rather than a connection reset), then the connection is
closed. The refused request never reaches Django, so it has no request id and no entry in
the request log; it is logged here as a warning.

How it is plugged in: `manage.py serve` runs Daphne through `CommandLineInterface` below,
whose `Server` uses `HTTPFactory`, whose channels are `LimitedHTTPChannel`s building
`LimitedWebRequest`s. Daphne's `Server.run` builds its `HTTPFactory` itself, with no
parameter for it; the one place that works around that is `Server.http_factory`. It covers
every endpoint Daphne listens on, plain TCP and TLS alike. The channels are plain HTTP/1.1
channels, not Twisted's wrapper that would switch to HTTP/2 after ALPN: HTTP/2 is not
enabled (Twisted's http2 extra is not installed).
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
from twisted.internet.protocol import Protocol
from twisted.protocols.policies import ProtocolWrapper
from twisted.web import http
from twisted.web.http_headers import Headers

from generation.api.errors import ApiError, error_body_for_path
from generation.lifecycle.shutdown import drain

logger = logging.getLogger(__name__)

# How long a refused connection keeps reading (and dropping) what the client still sends.
LINGER_SECONDS = 2.0
# Connections accepted past LLM_MAX_CONNECTIONS, for health probes only.
PROBE_HEADROOM = 8
# Seconds a client refused for too many connections is asked to wait: slots free up as
# responses end and slow clients meet their deadlines.
BUSY_RETRY_AFTER_SECONDS = 2
PHRASES = {408: b"Request Timeout", 413: b"Content Too Large", 503: b"Service Unavailable"}


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
            return  # the rest of a piece of chunked body that passed the limit
        self._received += len(data)
        if self._received > self.body_limit:
            self.content.close()
            self.content = BytesIO()
            self._refuse(f"The request body is over the limit of {self.body_limit} bytes.")
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        """Called by the channel once the whole body is in; hands the request to Daphne."""
        if self._chunked:
            # The channel has decoded the chunks: Django reads Content-Length bytes.
            self.requestHeaders.removeHeader(b"transfer-encoding")
            self.requestHeaders.setRawHeaders(b"content-length", [str(self.content.tell()).encode("ascii")])
        super().requestReceived(command, path, version)

    def _refuse(self, message: str) -> None:
        """Answer 413 now, before (the rest of) the body, and close the connection."""
        self._refused = True
        logger.warning("refused a request body over the limit on %s: %s", self.channel.target_path(), message)
        # No "100 Continue" after this answer: the channel sends one after `gotLength`
        # when the client asked for it.
        self.requestHeaders.removeHeader(b"expect")
        self.channel.refuse(ApiError(413, "request_too_large", message))


class LimitedHTTPChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 channel, with deadlines for a request's headers and body, and the
    refusals of this module: an answer, then the connection closed."""

    # Set by `HTTPFactory` on a connection accepted past LLM_MAX_CONNECTIONS.
    over_capacity = False

    def connectionMade(self):
        self._deadline = None
        self._awaiting_headers = True
        self._closing = False
        self._linger = None
        super().connectionMade()
        self._start_deadline("headers", settings.LLM_HEADER_TIMEOUT_SECONDS)

    def dataReceived(self, data):
        if self._closing:
            return  # a refused client: what it still sends is dropped until the connection closes
        if self._awaiting_headers and self._deadline is None:
            self._start_deadline("headers", settings.LLM_HEADER_TIMEOUT_SECONDS)  # a kept-alive connection
        super().dataReceived(data)

    def allHeadersReceived(self):
        self._awaiting_headers = False
        self._stop_deadline()
        path = self.target_path()
        if self.over_capacity and not path.startswith("/health/"):
            logger.warning("refused a request on %s: over LLM_MAX_CONNECTIONS", path)
            message = "The server has too many open connections; retry shortly."
            retry = {"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)}
            self.refuse(ApiError(503, "too_many_connections", message, headers=retry))
            return
        super().allHeadersReceived()
        if self.over_capacity:
            # A health probe is served, and its connection does not stay open after it.
            self.persistent = False
            self.requests[-1].responseHeaders.setRawHeaders(b"connection", [b"close"])
        if not self._closing and self.length != 0:
            self._start_deadline("body", settings.LLM_BODY_TIMEOUT_SECONDS)

    def rawDataReceived(self, data):
        if not self._closing:  # the rest of the data received with a refused request's headers
            super().rawDataReceived(data)

    def allContentReceived(self):
        if self._closing:
            return  # the end of a refused request's body: the request never runs
        self._stop_deadline()
        super().allContentReceived()

    def requestDone(self, request):
        # Set before the channel replays what the client sent after this request: the
        # next request's header deadline starts with its first byte.
        self._awaiting_headers = self.persistent
        super().requestDone(request)

    def timeoutConnection(self):
        """Twisted's idle timeout (60 s without a byte): 408 in the middle of a request."""
        if self._deadline is None:
            super().timeoutConnection()  # idle between requests: closed
        else:
            self._time_out(f"Nothing more of the request arrived for {self.timeOut:g} s.")

    def target_path(self) -> str:
        """The path of the request being received (the channel keeps its target in `_path`
        until the request is whole); empty before the request line is in."""
        target = getattr(self, "_path", b"") or b""
        return unquote(target.split(b"?", 1)[0].decode("ascii", "replace"))

    def refuse(self, error: ApiError) -> None:
        """Answer `error` now, in the called API's shape, and close the connection."""
        self._closing = True
        self._stop_deadline()
        self.setTimeout(None)
        body = json.dumps(error_body_for_path(self.target_path(), error)).encode()
        headers = Headers(
            {
                b"content-type": [b"application/json"],
                b"content-length": [str(len(body)).encode("ascii")],
                b"connection": [b"close"],
                **{name.lower().encode("ascii"): [value.encode("ascii")] for name, value in error.headers.items()},
            }
        )
        self.writeHeaders(b"HTTP/1.1", str(error.status).encode("ascii"), PHRASES[error.status], headers)
        self.write(body)
        transport = self.transport
        # The channel is the transport's producer (it pauses reading while a request is
        # handled); without it, nothing resumes or pauses reading behind our back, and a
        # half-close is not held up waiting for it.
        transport.unregisterProducer()
        # Plain TCP: the answer, then the end of the stream. Not under TLS: its transport
        # claims the TCP connection's interfaces, and would end the stream under the TLS
        # layer before the answer; TLS ends when the connection is closed below.
        if not self.isSecure() and IHalfCloseableDescriptor.providedBy(transport):
            transport.loseWriteConnection()
        self._linger = self.callLater(LINGER_SECONDS, self._close)

    def _close(self) -> None:
        # Aborted if it has not closed after `abortTimeout` (Twisted's, 15 s): a TLS
        # connection whose handshake never ends keeps waiting to send its answer.
        self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)
        self.transport.loseConnection()

    def _start_deadline(self, part: str, seconds: float) -> None:
        message = f"The request's {part} did not arrive within {seconds:g} s."
        self._deadline = self.callLater(seconds, self._time_out, message)

    def _stop_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _time_out(self, message: str) -> None:
        self._deadline = None
        if self.transport.disconnecting:
            return  # closing already (Twisted's 400 for a malformed request)
        logger.warning("timed out a slow client on %r: %s", self.target_path(), message)
        self.refuse(ApiError(408, "request_timeout", message))

    def connectionLost(self, reason):
        self._stop_deadline()
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)


class _Closed(Protocol):
    """A connection past LLM_MAX_CONNECTIONS and the probes' headroom: closed at once."""

    def connectionMade(self):
        self.transport.loseConnection()


class HTTPFactory(daphne_http.HTTPFactory):
    """Daphne's factory, with `LimitedHTTPChannel`s building `LimitedWebRequest`s, and
    its open connections counted (`registerProtocol`, `unregisterProtocol`: called by the
    wrapper around each connection)."""

    protocol = LimitedHTTPChannel

    def __init__(self, server):
        super().__init__(server)
        self.open_connections = 0

    def buildProtocol(self, addr):
        if self.open_connections >= settings.LLM_MAX_CONNECTIONS + PROBE_HEADROOM:
            logger.warning("closed a connection at once: %d are open", self.open_connections)
            return _Closed()
        channel = super().buildProtocol(addr)
        channel.requestFactory = LimitedWebRequest
        channel.over_capacity = self.open_connections >= settings.LLM_MAX_CONNECTIONS
        return ProtocolWrapper(self, channel)

    def registerProtocol(self, wrapper):
        self.open_connections += 1

    def unregisterProtocol(self, wrapper):
        self.open_connections -= 1


class Server(daphne_server.Server):
    """Daphne's server with `HTTPFactory` above, and a graceful drain before it stops.

    `Server.run` builds `daphne.http_protocol.HTTPFactory(self)` and stores it in
    `self.http_factory` before it listens with it; this attribute stores ours instead.

    On SIGTERM (or SIGINT) Twisted runs its "before shutdown" triggers and waits for the
    Deferreds they return while it still serves connections. Daphne's trigger,
    `kill_all_applications`, cancels every request at once; here it first waits for
    `generation.lifecycle.shutdown.drain` (LLM_SHUTDOWN_GRACE_SECONDS at most).
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
