import asyncio
import contextlib
import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from tokenizers import Tokenizer

from benchmark import report
from benchmark.prompts import PromptMaker, service_tokenizer_path
from benchmark.runner import CHAT_MESSAGE_TOKENS, Plan, TargetFailed, ratios, run_benchmark
from benchmark.targets import (
    DirectEngineTarget,
    NativeStreamTarget,
    OpenAIChatTarget,
    OpenAICompletionsTarget,
    WorkerEngineTarget,
)
from catalog import snapshot
from catalog.selectors import ServableModel, resolve_model


@contextlib.contextmanager
def engine_logs_to_stderr():
    """mistral.rs logs to file descriptor 1: while it runs, that goes to standard error,
    so that standard output carries the results alone (`--json`)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def named_url(value: str) -> tuple[str, str]:
    name, separator, url = value.partition("=")
    if not separator or not name or not url.startswith(("http://", "https://")):
        raise ValueError(value)
    return name, url


class Command(BaseCommand):
    help = (
        "Benchmark OpenAI-compatible endpoints (this service, llama-server...) and the engine called "
        "in-process, with the same prompts and greedy settings, at several numbers of concurrent streams "
        "and prompt lengths, or with conversations turn by turn."
    )

    def add_arguments(self, parser):
        parser.add_argument("--openai", action="append", default=[], type=named_url, metavar="NAME=URL",
                            help="an OpenAI-compatible server, driven through POST /v1/completions, streamed")
        parser.add_argument("--openai-chat", action="append", default=[], type=named_url, metavar="NAME=URL",
                            help="an OpenAI-compatible server, driven through POST /v1/chat/completions, streamed: "
                            "the prompts as messages, through the model's chat template; the prompt tokens are "
                            "the server's count (usage), and the cached ones too where it reports them")
        parser.add_argument("--native", action="append", default=[], type=named_url, metavar="NAME=URL",
                            help="this service's native POST /api/generate/stream")
        parser.add_argument("--direct", nargs="?", const="direct", metavar="NAME",
                            help="also the engine in-process, loaded with the catalog entry's settings")
        parser.add_argument("--worker", nargs="?", const="worker", metavar="NAME",
                            help="also the engine in a worker process, driven as the service drives it, "
                            "without HTTP (against --direct: the cost of the process hop)")
        parser.add_argument("--model", help="model id sent to the servers (default: the catalog's default model)")
        parser.add_argument("--api-key", default="", help="Bearer key for the HTTP targets")
        parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16], metavar="N")
        parser.add_argument("--requests", type=int, default=4,
                            help="requests per level (conversations, with --chat-turns), at least one per "
                            "stream (default 4)")
        parser.add_argument("--max-tokens", type=int, default=64)
        parser.add_argument("--prompt-tokens", type=int, nargs="+", default=[], metavar="N",
                            help="prompts of exactly N tokens of the model's tokenizer (one level per N), random "
                            "words never sent twice, instead of the short fixed prompts (the service adds BOS)")
        parser.add_argument("--chat-turns", type=int, default=0, metavar="K",
                            help="conversations of K turns, as chat clients send them: a first user message of "
                            f"--prompt-tokens tokens (default {CHAT_MESSAGE_TOKENS}), then at each turn the whole "
                            "history, with the target's own replies, and a short follow-up question; a stream takes "
                            "each conversation through all its turns; each turn is reported as "
                            "a level (--openai-chat sends them as messages, the other targets as one raw "
                            "'User: ... Assistant: ...' text)")
        parser.add_argument("--seed", type=int, default=0, help="of the random words of --prompt-tokens")
        parser.add_argument("--tokenizer", type=Path, metavar="TOKENIZER.json",
                            help="count prompt tokens with this tokenizer (default: the one the service loads "
                            "for the model's catalog entry)")
        parser.add_argument("--rounds", type=int, default=1,
                            help="targets alternate level by level; each round repeats every level")
        parser.add_argument("--baseline", action="append", default=[], metavar="NAME",
                            help="a target to compare the others with, round by round (repeatable)")
        parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
        parser.add_argument("--plot", type=Path, metavar="FILE.png",
                            help="draw throughput and time to first token against concurrency")

    def handle(self, *args, **options):
        plan = Plan(
            concurrency=tuple(options["concurrency"]),
            requests=options["requests"],
            max_tokens=options["max_tokens"],
            rounds=options["rounds"],
            prompt_tokens=tuple(options["prompt_tokens"]),
            chat_turns=options["chat_turns"],
            seed=options["seed"],
        )
        if min(plan.concurrency) < 1 or plan.requests < 1 or plan.max_tokens < 1 or plan.rounds < 1:
            raise CommandError("--concurrency, --requests, --max-tokens and --rounds must be positive")
        if min(plan.prompt_tokens, default=1) < 1 or plan.chat_turns < 0:
            raise CommandError("--prompt-tokens must be positive, --chat-turns at least 0")
        names = [name for name, _ in options["openai"] + options["openai_chat"] + options["native"]]
        names += [options[kind] for kind in ("direct", "worker") if options[kind]]
        if not names:
            raise CommandError(
                "Name at least one target: --openai NAME=URL, --openai-chat NAME=URL, --native NAME=URL, "
                "--direct or --worker"
            )
        if len(set(names)) != len(names):
            raise CommandError(f"Target names must differ: {names}")
        for baseline in options["baseline"]:
            if baseline not in names:
                raise CommandError(f"--baseline {baseline} is none of the targets {names}")
        with engine_logs_to_stderr():
            servable = self.catalog_entry(options, plan)
            maker = self.prompt_maker(options, plan, servable)  # before the engines load: fails fast
            targets = self.targets(options, plan, servable)
            try:
                results = asyncio.run(self.run(targets, plan, maker))
            except TargetFailed as exc:
                raise CommandError(str(exc)) from exc
        compared = [row for baseline in options["baseline"] for row in ratios(results, baseline)]
        if options["plot"]:
            report.plot(results, options["plot"])
        report.write(self.stdout, plan, [(t.name, t.kind, t.url) for t in targets], results, compared,
                     as_json=options["json"])

    def catalog_entry(self, options, plan: Plan) -> ServableModel | None:
        """The model's catalog entry, where the targets or the prompts need it."""
        needs_tokenizer = plan.counts_tokens() and not options["tokenizer"]
        if options["direct"] or options["worker"] or not options["model"] or needs_tokenizer:
            return resolve_model(snapshot.load(), model_id=options["model"])
        return None

    def targets(self, options, plan: Plan, servable: ServableModel | None) -> list:
        max_streams = max(plan.concurrency)
        model = servable.model_id if servable else options["model"]
        http = dict(model=model, api_key=options["api_key"], max_connections=max_streams)
        targets = [OpenAICompletionsTarget(name, url, **http) for name, url in options["openai"]]
        targets += [OpenAIChatTarget(name, url, **http) for name, url in options["openai_chat"]]
        targets += [NativeStreamTarget(name, url, **http) for name, url in options["native"]]
        if options["direct"]:
            from generation.engine.runner import load_engine  # mistral.rs, in this process

            self.stderr.write(f"loading {model} in-process...")
            engine = load_engine(servable.engine, settings.LLM_MODEL_CACHE_DIR)
            targets.append(
                DirectEngineTarget(options["direct"], engine, bos_token=servable.bos_token, max_streams=max_streams)
            )
        if options["worker"]:
            from generation.core.service import engine_cache

            self.stderr.write(f"loading {model} in a worker process...")
            cache = engine_cache()
            worker = cache.load(servable.engine)
            targets.append(WorkerEngineTarget(options["worker"], cache, worker, bos_token=servable.bos_token))
        return targets

    def prompt_maker(self, options, plan: Plan, servable: ServableModel | None) -> PromptMaker | None:
        if not plan.counts_tokens():
            return None
        try:
            path = options["tokenizer"] or service_tokenizer_path(servable.engine, settings.LLM_MODEL_CACHE_DIR)
            return PromptMaker(Tokenizer.from_file(str(path)), seed=plan.seed)
        except Exception as exc:  # the tokenizers library raises a bare Exception for an unreadable file
            source = options["tokenizer"] or f"the tokenizer of {servable.model_id}"
            raise CommandError(f"Cannot make prompts of exact lengths with {source}: {exc}") from exc

    async def run(self, targets: list, plan: Plan, maker: PromptMaker | None):
        progress = Progress(
            TextColumn("benchmark"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        with progress:
            task = progress.add_task("requests", total=plan.total_requests(len(targets)))
            try:
                return await run_benchmark(targets, plan, maker, on_done=lambda: progress.advance(task))
            finally:
                for target in targets:
                    await target.aclose()
