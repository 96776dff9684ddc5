"""The rules that tell a hung engine worker from a slow one (generation.engine.watchdog), on a clock of the test's.

The silent worker is also tested end to end, with a worker stopped by SIGSTOP
(tests/e2e/test_engine_workers.py); a deadlocked or spinning engine cannot be made on demand.
"""

from generation.engine.watchdog import BUSY_CPU_SECONDS, HangLimits, Watchdog

LIMITS = HangLimits(hang_seconds=15, stall_seconds=120, min_prefill_tokens_per_second=10)


def beating(watchdog: Watchdog, start: float, end: float, *, cpu_per_second: float) -> float:
    """Heartbeats every second from `start` to `end`, the CPU time growing as given; the CPU time at the end."""
    cpu = 0.0
    now = start
    while now <= end:
        watchdog.heartbeat(cpu, now)
        cpu += cpu_per_second
        now += 1
    return cpu


def test_an_idle_worker_that_beats_never_hangs():
    watchdog = Watchdog(LIMITS, now=0)
    beating(watchdog, 0, 3600, cpu_per_second=0.0001)
    assert watchdog.verdict(3600, busy=False) is None


def test_a_silent_worker_hangs_after_the_hang_seconds_busy_or_not():
    watchdog = Watchdog(LIMITS, now=0)
    beating(watchdog, 0, 10, cpu_per_second=1)
    assert watchdog.verdict(24, busy=False) is None
    assert watchdog.verdict(26, busy=False) == "no heartbeat for 16 s"
    assert watchdog.verdict(26, busy=True).startswith("no heartbeat")


def test_a_long_prefill_that_keeps_the_cpu_busy_is_not_a_hang():
    """2,000 tokens take about 15 s on 2 cores; at the slowest rate measured (17 tokens/s), 2 minutes."""
    watchdog = Watchdog(LIMITS, now=0)
    watchdog.progress(0)  # the request arrives
    beating(watchdog, 0, 300, cpu_per_second=1.8)
    assert watchdog.verdict(300, busy=True, longest_prompt_tokens=2000) is None


def test_a_worker_with_requests_that_uses_no_cpu_and_answers_nothing_is_deadlocked():
    watchdog = Watchdog(LIMITS, now=0)
    watchdog.progress(0)
    beating(watchdog, 0, 5, cpu_per_second=1)
    beating(watchdog, 6, 30, cpu_per_second=BUSY_CPU_SECONDS / 100)  # its heartbeat thread only
    assert watchdog.verdict(19, busy=True, longest_prompt_tokens=2000) is None
    assert watchdog.verdict(21, busy=True, longest_prompt_tokens=2000) == (
        "no answer and no CPU use for 16 s while it had requests"
    )
    assert watchdog.verdict(21, busy=False) is None  # nothing to do, nothing to answer


def test_answers_reset_the_idle_and_stall_clocks():
    watchdog = Watchdog(LIMITS, now=0)
    beating(watchdog, 0, 100, cpu_per_second=0)
    watchdog.progress(90)  # e.g. a request arrived at an idle worker, or a token came
    assert watchdog.verdict(100, busy=True) is None


def test_a_busy_worker_that_answers_nothing_for_longer_than_its_prompt_allows_is_stalled():
    watchdog = Watchdog(LIMITS, now=0)
    watchdog.progress(0)
    beating(watchdog, 0, 400, cpu_per_second=1.9)
    # 120 s, plus 2,000 tokens at 10 tokens/s: 320 s.
    assert watchdog.verdict(319, busy=True, longest_prompt_tokens=2000) is None
    assert watchdog.verdict(321, busy=True, longest_prompt_tokens=2000) == (
        "no answer for 321 s while it had requests (allowed: 320 s)"
    )
    assert watchdog.verdict(121, busy=True, longest_prompt_tokens=0) is not None
