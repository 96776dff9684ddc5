"""What a benchmark drives: an HTTP endpoint or the engine in-process, one request at a time.

Every target answers `generate(prompt, max_tokens)` with the timings of one greedy
request, measured the same way: from just before the request is sent to the first
non-empty text and to the end of the stream, and the text it generated (a conversation's
next turn resends it). A chat target sends the prompt's messages, the others its raw text.
"""

import asyncio
import concurrent.futures
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError

from benchmark.prompts import Prompt
from catalog.sampling import SamplingParams
from generation.engine.types import Finished, TextDelta


@dataclass(frozen=True)
class RequestResult:
    started: float  # time.perf_counter() values
    first_text_at: float | None
    finished_at: float
    tokens: int
    error: str | None = None
    text: str = ""
    prompt_tokens: int | None = None  # the server's own count of the prompt, where it is the one to report
    cached_prompt_tokens: int | None = None  # those the server's prefix cache gave, when it reports them

    @property
    def ttft(self) -> float | None:
        return None if self.first_text_at is None else self.first_text_at - self.started

    @property
    def decode_tokens_per_second(self) -> float | None:
        """Tokens per second of this stream after its first token."""
        if self.first_text_at is None or self.tokens < 2 or self.finished_at <= self.first_text_at:
            return None
        return (self.tokens - 1) / (self.finished_at - self.first_text_at)


class _Timing:
    """Collects the timings of one request as its stream arrives."""

    def __init__(self):
        self.started = time.perf_counter()
        self.first_text_at = None
        self.chunks: list[str] = []

    def text(self, text: str) -> None:
        if text:
            self.chunks.append(text)
            if self.first_text_at is None:
                self.first_text_at = time.perf_counter()

    def result(self, tokens: int | None = None, error: str | None = None, *, prompt_tokens: int | None = None,
               cached_prompt_tokens: int | None = None) -> RequestResult:
        return RequestResult(
            started=self.started,
            first_text_at=self.first_text_at,
            finished_at=time.perf_counter(),
            tokens=tokens if tokens is not None else len(self.chunks),
            error=error,
            text="".join(self.chunks),
            prompt_tokens=prompt_tokens,
            cached_prompt_tokens=cached_prompt_tokens,
        )


class HttpTarget:
    """An HTTP server that streams Server-Sent Events; one connection pool sized for the largest level."""

    kind = ""
    path = ""

    def __init__(self, name: str, url: str, *, model: str, api_key: str = "", max_connections: int = 16):
        self.name = name
        self.url = url.rstrip("/")
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(600, connect=10),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    def body(self, prompt: Prompt, max_tokens: int) -> dict:
        raise NotImplementedError

    async def read(self, events: AsyncIterator[ServerSentEvent], timing: "_Timing") -> RequestResult:
        raise NotImplementedError

    async def generate(self, prompt: Prompt, max_tokens: int) -> RequestResult:
        timing = _Timing()
        try:
            # Sent with httpx's default Accept (*/*), as the OpenAI clients do.
            async with self._client.stream("POST", self.url + self.path, json=self.body(prompt, max_tokens)) as response:
                if response.status_code != 200:
                    await response.aread()
                    return timing.result(error=f"HTTP {response.status_code}: {response.text[:200]}")
                return await self.read(EventSource(response).aiter_sse(), timing)
        except (httpx.HTTPError, SSEError) as exc:
            return timing.result(error=f"{type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        await self._client.aclose()


class OpenAIStreamTarget(HttpTarget):
    """Any OpenAI-compatible server, streamed, greedy, with a usage chunk: what the completions
    and chat endpoints share; each says what it sends and where a chunk's text is."""

    # Whether the usage's prompt_tokens is the count to report: a chat template adds tokens
    # that the prompt's text lacks; a completion's count adds only BOS, left out as the raw
    # targets leave it out, so that their prefill rates compare.
    reports_prompt_tokens = False

    def request(self, prompt: Prompt) -> dict:
        raise NotImplementedError

    def choice_text(self, choice: dict) -> str:
        raise NotImplementedError

    def body(self, prompt: Prompt, max_tokens: int) -> dict:
        return {
            "model": self.model,
            **self.request(prompt),
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    async def read(self, events, timing):
        usage = {}
        async for event in events:
            if event.data == "[DONE]":
                return timing.result(
                    usage.get("completion_tokens"),
                    prompt_tokens=usage.get("prompt_tokens") if self.reports_prompt_tokens else None,
                    cached_prompt_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
                )
            chunk = json.loads(event.data)
            if "error" in chunk:
                return timing.result(error=str(chunk["error"])[:200])
            for choice in chunk.get("choices") or ():
                timing.text(self.choice_text(choice))
            usage = chunk.get("usage") or usage
        return timing.result(error="the stream ended without [DONE]")


class OpenAICompletionsTarget(OpenAIStreamTarget):
    """`POST /v1/completions`: the prompt's raw text."""

    kind = "openai"
    path = "/v1/completions"

    def request(self, prompt: Prompt) -> dict:
        return {"prompt": prompt.text}

    def choice_text(self, choice: dict) -> str:
        return choice.get("text") or ""


class OpenAIChatTarget(OpenAIStreamTarget):
    """`POST /v1/chat/completions`: the prompt's messages, through the model's chat template."""

    kind = "openai-chat"
    path = "/v1/chat/completions"
    reports_prompt_tokens = True

    def request(self, prompt: Prompt) -> dict:
        return {"messages": prompt.messages}

    def choice_text(self, choice: dict) -> str:
        return (choice.get("delta") or {}).get("content") or ""


class NativeStreamTarget(HttpTarget):
    """This service's own `POST /api/generate/stream` (text events, then `event: done`)."""

    kind = "native"
    path = "/api/generate/stream"

    def body(self, prompt: Prompt, max_tokens: int) -> dict:
        return {"model": self.model, "prompt": prompt.text, "max_tokens": max_tokens, "temperature": 0}

    async def read(self, events, timing):
        async for event in events:
            if event.event == "done":
                return timing.result(json.loads(event.data)["tokens_generated"])
            if event.event == "error":
                return timing.result(error=event.data[:200])
            timing.text(event.data)
        return timing.result(error="the stream ended without a done event")


class DirectEngineTarget:
    """The mistral.rs engine called in-process, with no service and no worker process in between.

    `engine` is a generation.engine.runner.LoadedEngine: it submits what a worker submits
    for a raw continuation, with the same workarounds (the prefill gate, the leading space
    restored), after admitting the prompt as a worker does (its tokens counted), one thread per
    stream: the floor that the service's overhead is measured against, and the design
    before the engine moved to worker processes.
    """

    kind = "direct"

    def __init__(self, name: str, engine, *, bos_token: str, max_streams: int = 16):
        self.name = name
        self.url = "in-process"
        self._engine = engine
        self._bos_token = bos_token
        self._threads = concurrent.futures.ThreadPoolExecutor(max_workers=max_streams, thread_name_prefix="direct")

    async def generate(self, prompt: Prompt, max_tokens: int) -> RequestResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._generate, self._bos_token + prompt.text, max_tokens)

    def _generate(self, prompt: str, max_tokens: int) -> RequestResult:
        timing = _Timing()
        tokens = None
        try:
            prompt_tokens, sampling = self._engine.admit(prompt, SamplingParams(max_tokens=max_tokens, temperature=0))
            for event in self._engine.generate(
                prompt, sampling, prompt_tokens=prompt_tokens, keep_leading_whitespace=True, cancelled=threading.Event()
            ):
                if isinstance(event, TextDelta):
                    timing.text(event.text)
                elif isinstance(event, Finished):
                    tokens = event.completion_tokens
        except Exception as exc:  # an engine failure is a failed request, not a crashed benchmark
            return timing.result(error=f"{type(exc).__name__}: {exc}")
        return timing.result(tokens)

    async def aclose(self) -> None:
        self._threads.shutdown(wait=False)


class WorkerEngineTarget:
    """The engine in its worker process, driven as the service drives it, with no HTTP in between.

    Against DirectEngineTarget in the same run, this is the cost of the process hop
    (the channel, the reader thread, the hand-over to the event loop) alone.
    """

    kind = "worker"

    def __init__(self, name: str, cache, worker, *, bos_token: str):
        self.name = name
        self.url = f"worker pid {worker.pid}"
        self._cache = cache  # a generation.engine.EngineCache
        self._worker = worker
        self._bos_token = bos_token

    async def generate(self, prompt: Prompt, max_tokens: int) -> RequestResult:
        timing = _Timing()
        tokens = None
        try:
            stream = await self._worker.stream(
                self._bos_token + prompt.text, SamplingParams(max_tokens=max_tokens, temperature=0),
                keep_leading_whitespace=True,
                released=lambda: None,
            )
            async for event in stream.events():
                if isinstance(event, TextDelta):
                    timing.text(event.text)
                else:
                    tokens = event.completion_tokens
        except Exception as exc:  # an engine failure is a failed request, not a crashed benchmark
            return timing.result(error=f"{type(exc).__name__}: {exc}")
        return timing.result(tokens)

    async def aclose(self) -> None:
        self._cache.unload(self._worker.config.model_id)
