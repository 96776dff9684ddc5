"""The engine behind one small interface.

The rest of the service asks for "a stream of text deltas for this prompt on this
model" (`EngineCache.get`, then `EngineCache.stream`) and never touches `mistralrs`
types. Each loaded model runs in a worker process of its own, so that a load freezes
nothing in the web process, unloading gives the memory back, and a crash ends only that
model's streams:

- api: the values both sides exchange (configuration, sampling, text deltas);
- cache: the process-wide cache of workers (start, LRU stop, restart, load failures);
- client: one worker seen from the web process (its channel, streams, death);
- protocol: the messages on the channel;
- worker: the worker process;
- runner: the engine in the process that imports mistral.rs, with its workarounds
  (the worker's, and the benchmark's in-process target).

The web process never imports `runner` or `worker`.
"""

from generation.engine.api import EngineConfig, Finished, Sampling, TextDelta, TokenLogprob, engine_error_summary
from generation.engine.cache import EngineCache
from generation.engine.client import ModelWorker

__all__ = [
    "EngineCache",
    "EngineConfig",
    "Finished",
    "ModelWorker",
    "Sampling",
    "TextDelta",
    "TokenLogprob",
    "engine_error_summary",
]
