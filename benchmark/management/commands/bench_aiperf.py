import asyncio
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tokenizers import Tokenizer

from benchmark import aiperf, report
from benchmark.prompts import PromptMaker, service_tokenizer_path, short_prompts
from benchmark.runner import Level, Plan, ratios
from benchmark.targets import OpenAICompletionsTarget
from catalog import snapshot
from catalog.selectors import resolve_model


class Command(BaseCommand):
    help = (
        "Run NVIDIA's aiperf (installed apart: requirements-aiperf.txt) and this project's benchmark side by side "
        "against one OpenAI-compatible server, on prompts of exact token lengths, and compare their numbers."
    )

    def add_arguments(self, parser):
        parser.add_argument("url", help="the server, e.g. http://127.0.0.1:8291")
        parser.add_argument("--aiperf", default="aiperf", metavar="PATH", help="the aiperf program (default: on PATH)")
        parser.add_argument("--model", help="model id sent (default: the catalog's default model)")
        parser.add_argument("--api-key", default="")
        parser.add_argument("--prompt-tokens", type=int, nargs="+", required=True, metavar="N")
        parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4], metavar="N")
        parser.add_argument("--requests", type=int, default=4, help="per level, at least one per stream")
        parser.add_argument("--max-tokens", type=int, default=32)
        parser.add_argument("--rounds", type=int, default=1)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--tokenizer", type=Path, metavar="TOKENIZER.json",
                            help="default: the one the service loads for the model's catalog entry")
        parser.add_argument("--out", type=Path, metavar="DIR", help="where aiperf's runs go (default: a new temp dir)")
        parser.add_argument("--timeout", type=float, default=600, help="seconds allowed to each aiperf run")
        parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")

    def handle(self, *args, **options):
        plan = Plan(concurrency=tuple(options["concurrency"]), requests=options["requests"],
                    max_tokens=options["max_tokens"], rounds=options["rounds"],
                    prompt_tokens=tuple(options["prompt_tokens"]), seed=options["seed"])
        if min(plan.concurrency + plan.prompt_tokens) < 1 or min(plan.requests, plan.max_tokens, plan.rounds) < 1:
            raise CommandError("--prompt-tokens, --concurrency, --requests, --max-tokens and --rounds must be positive")
        model, tokenizer = options["model"], options["tokenizer"]
        if not (model and tokenizer):  # the catalog's default model, the tokenizer its entry loads
            servable = resolve_model(snapshot.load(), model_id=model)
            model = servable.model_id
            tokenizer = tokenizer or service_tokenizer_path(servable.engine, settings.LLM_MODEL_CACHE_DIR)
        try:
            maker = PromptMaker(Tokenizer.from_file(str(tokenizer)), seed=plan.seed)
        except Exception as exc:  # the tokenizers library raises a bare Exception for an unreadable file
            raise CommandError(f"Cannot make prompts of exact lengths with {tokenizer}: {exc}") from exc
        out = options["out"] or Path(tempfile.mkdtemp(prefix="bench-aiperf-"))
        target = OpenAICompletionsTarget(aiperf.BENCH, options["url"], model=model,
                                         api_key=options["api_key"], max_connections=max(plan.concurrency))

        async def run_aiperf(level: Level, requests: int, seed: int) -> Path:
            folder = out / f"{level.prompt_tokens}-tokens-{level.concurrency}-streams-seed-{seed}"
            argv = aiperf.command(
                options["aiperf"], url=options["url"], model=model, tokenizer_dir=tokenizer.parent,
                level=level, requests=requests, max_tokens=plan.max_tokens, seed=seed, out=folder,
                api_key=options["api_key"],
            )
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / "aiperf.out").open("wb") as log:
                process = await asyncio.create_subprocess_exec(*argv, stdout=log, stderr=log, env=aiperf.environment())
                try:
                    code = await asyncio.wait_for(process.wait(), options["timeout"])
                except TimeoutError:
                    process.kill()
                    await process.wait()
                    raise CommandError(f"aiperf ran past {options['timeout']} s: {folder / 'aiperf.out'}") from None
            if code:
                raise CommandError(f"aiperf exited with {code}: {folder / 'aiperf.out'}")
            self.stderr.write(f"aiperf: {folder}")
            return folder

        async def run():
            try:
                (warmup,) = short_prompts(1)
                warm = await target.generate(warmup, plan.warmup_tokens)
                if warm.error:
                    raise CommandError(f"{options['url']} failed its warm-up request: {warm.error}")
                return await aiperf.run_side_by_side(target, run_aiperf, plan, maker)
            finally:
                await target.aclose()

        results = asyncio.run(run())
        compared = ratios(results, aiperf.BENCH)
        targets = dict.fromkeys((result.target, result.kind, result.url) for result in results)
        report.write(self.stdout, plan, targets, results, compared, as_json=options["json"])
