"""The engine's own completion path, in a process of its own: what the service's streams are
compared with. Loading a Runner holds the GIL for the whole load (ENGINE_NOTES.md); in the test
process that would stop the threads that read the test's engine workers, whose watchdog would
take their silence for a hang and kill them."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from catalog.engine_settings import EngineConfig


def _completions(config: EngineConfig, cache_dir: Path, requests: list[tuple[str, int]]) -> list[str]:
    from mistralrs import CompletionRequest

    from generation.engine.runner import load_engine

    runner = load_engine(config, cache_dir).runner
    return [
        runner.send_completion_request(
            CompletionRequest(prompt=prompt, model="x", max_tokens=max_tokens, temperature=0.0)
        ).choices[0].text
        for prompt, max_tokens in requests
    ]


def direct_completions(config: EngineConfig, cache_dir: Path, requests: list[tuple[str, int]]) -> dict:
    """{(prompt, max_tokens): text} from the engine's non-streaming completion path (greedy),
    which keeps a continuation's leading whitespace, loaded with `config` in a new process."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        texts = pool.submit(_completions, config, cache_dir, requests).result(timeout=600)
    return dict(zip(requests, texts))
