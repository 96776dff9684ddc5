"""Whether a model's worker process still makes progress, or hangs.

A worker that hangs (stopped by a signal, a deadlock in the engine, a livelock) must not
hold its clients, their concurrency slots or the web process's threads for ever. What a
hang looks like, told apart from honest slowness (a 2,000-token prefill takes about 15 s
on 2 cores, with no token meanwhile):

- **silent**: the worker sends a heartbeat every `HEARTBEAT_SECONDS` from a thread of
  its own, whatever its engine does. No message at all for `hang_seconds`: the process
  is stopped (SIGSTOP, a debugger) or its Python is frozen (a call that never lets go of
  the GIL).
- **idle with work**: each heartbeat carries the process's CPU time. A worker with
  requests under way that neither answers nor uses the CPU for `hang_seconds` waits on
  something that will not come (a deadlock). A prefill, however long, keeps the cores busy.
- **stalled**: a worker with requests under way that uses the CPU but answers nothing for
  `stall_seconds`, plus the time its longest waiting prompt may take to prefill at
  `min_prefill_tokens_per_second`, spins without end (a livelock).

Each rule resets when the worker answers anything for a request (a token, a tokenizer's
answer, a failure, a release) or when it gets work after having none.
"""

from dataclasses import dataclass

# How often a worker's heartbeat thread writes (generation.engine.worker).
HEARTBEAT_SECONDS = 1.0
# CPU seconds a worker must use between two marks to count as busy: far above what its
# heartbeat thread uses (microseconds a beat), far below what any engine step takes.
BUSY_CPU_SECONDS = 0.05


@dataclass(frozen=True)
class HangLimits:
    hang_seconds: float = 15.0
    stall_seconds: float = 300.0
    # Below the slowest prefill measured on CPU (SmolLM2 from its Q4_1 file: 17 tokens/s).
    min_prefill_tokens_per_second: float = 10.0


class Watchdog:
    """The progress of one worker, fed by its reader thread; `verdict()` says whether it hangs.

    Times are `time.monotonic()` values, passed in so that the rules can be tested with a clock of
    one's own. Not thread-safe: the worker's reader thread is its only user.
    """

    def __init__(self, limits: HangLimits, now: float):
        self.limits = limits
        self._last_message = now
        self._last_progress = now
        self._cpu_mark: float | None = None  # the CPU time at the last mark
        self._cpu_busy_at = now  # when the CPU time last grew by BUSY_CPU_SECONDS

    def message(self, now: float) -> None:
        """Anything came from the worker, a heartbeat included."""
        self._last_message = now

    def heartbeat(self, cpu_seconds: float, now: float) -> None:
        self._last_message = now
        if self._cpu_mark is None or cpu_seconds - self._cpu_mark >= BUSY_CPU_SECONDS:
            self._cpu_mark, self._cpu_busy_at = cpu_seconds, now

    def progress(self, now: float) -> None:
        """The worker answered something for a request, or got work after having none."""
        self._last_message = self._last_progress = self._cpu_busy_at = now

    def silent_seconds(self, now: float) -> float:
        return now - self._last_message

    def verdict(self, now: float, *, busy: bool, longest_prompt_tokens: int = 0) -> str | None:
        """Why the worker hangs, in words for logs and clients; None while it does not."""
        limits = self.limits
        silent = now - self._last_message
        if silent > limits.hang_seconds:
            return f"no heartbeat for {silent:.0f} s"
        if not busy:
            return None
        idle = now - max(self._last_progress, self._cpu_busy_at)
        if idle > limits.hang_seconds:
            return f"no answer and no CPU use for {idle:.0f} s while it had requests"
        stalled = now - self._last_progress
        allowed = limits.stall_seconds + longest_prompt_tokens / limits.min_prefill_tokens_per_second
        if stalled > allowed:
            return f"no answer for {stalled:.0f} s while it had requests (allowed: {allowed:.0f} s)"
        return None
