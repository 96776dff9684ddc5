"""The messages between the web process and a model's worker process.

They travel over one Unix socket per worker, framed and pickled by
`multiprocessing.connection.Connection` (a length, then the pickle). Both ends are
this code base, started by the web process itself: nothing else can reach the socket.

web process -> worker: Load once, first; then Generate, Cancel, Tokenize, Detokenize, and Stop.
worker -> web process: Ready or LoadFailed in answer to Load; then, for each generation,
Admitted (its prompt's token count) or Failed (a refusal: the prompt is over the context),
then its Output messages, Failed if the engine failed, and Released once the engine has let
it go (every Generate gets exactly one Released); TokenIds or Failed for a Tokenize,
DetokenizedText or Failed for a Detokenize; and a Heartbeat every second, from Ready on
(generation.engine.watchdog tells a hung worker by them).
Many generations share the channel: each message carries its request's id. The worker
sends its messages in frames, each a tuple of the messages ready at once (the tokens of
every generation that one engine step made), so that they cost one write, one read and
one wake-up of the web process's event loop.
"""

from dataclasses import dataclass
from pathlib import Path

from catalog.engine_settings import EngineConfig
from catalog.sampling import SamplingParams
from common.errors import EngineFailed
from generation.engine.tracing import TraceExport
from generation.engine.types import ChatFormat, Finished, TextDelta

# --- web process -> worker ------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    config: EngineConfig
    cache_dir: Path
    log_level: str
    nice: int
    trace_export: TraceExport | None = None  # the web process's exporter settings; None: tracing off


@dataclass(frozen=True)
class Generate:
    """A rendered prompt to generate from: all the worker needs to admit it (its tokens are counted
    there, and `sampling.max_tokens` fitted to the context) and to start it, in one message."""

    id: int
    prompt: str
    sampling: SamplingParams
    keep_leading_whitespace: bool
    traceparent: str | None = None  # the request's span (W3C trace context); None: not traced


@dataclass(frozen=True)
class Cancel:
    """The client left: never submit the request if it is not yet, drop it at its next token if it is."""

    id: int


@dataclass(frozen=True)
class Tokenize:
    id: int
    text: str  # special tokens written as text ("<bos>") are parsed as such


@dataclass(frozen=True)
class Detokenize:
    id: int
    tokens: tuple[int, ...]


@dataclass(frozen=True)
class Stop:
    """Finish the generations under way (no new ones will come), then exit."""


# --- worker -> web process ------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    load_seconds: float  # the engine's own load, in the worker: files prepared and Runner built
    context_length: int | None
    chat_format: ChatFormat | None  # the model file's own
    vocab_size: int | None


@dataclass(frozen=True)
class LoadFailed:
    message: str  # for clients: no server paths (the worker's log has the whole error)


@dataclass(frozen=True)
class Heartbeat:
    cpu_seconds: float  # the worker process's CPU time so far, all its threads (the engine's too)


@dataclass(frozen=True)
class Admitted:
    """A generation that fits the context, before any Output: what its key's limits are counted with."""

    id: int
    prompt_tokens: int
    max_tokens: int  # the request's, lowered to what the context leaves after the prompt


@dataclass(frozen=True)
class Output:
    id: int
    event: TextDelta | Finished


@dataclass(frozen=True)
class Failed:
    id: int
    message: str  # for clients, as Output's events are
    code: str = EngineFailed.code  # a domain error's (common.errors), rebuilt as that error on the web side
    field: str | None = None


@dataclass(frozen=True)
class Released:
    id: int


@dataclass(frozen=True)
class TokenIds:
    id: int
    tokens: tuple[int, ...]


@dataclass(frozen=True)
class DetokenizedText:
    id: int
    text: str
