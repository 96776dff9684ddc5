"""The processes of a running server, read from /proc: its engine workers and their memory."""

from pathlib import Path

WORKER_MODULE = "generation.engine.worker"


def _stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and parent pid, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, parent = stat[stat.rindex(")") + 2 :].split()[:2]
    return state, int(parent)


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by whoever adopted it, is not)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def worker_pids(server_pid: int) -> list[int]:
    """The engine worker processes that `server_pid` started and that still run."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is None or stat[1] != server_pid or not alive(int(entry.name)):
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if WORKER_MODULE.encode() in command:
            pids.append(int(entry.name))
    return sorted(pids)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def total_rss_mb(server_pid: int) -> float:
    """The server's memory and its engine workers' together: the engine's is in the workers."""
    total = rss_mb(server_pid)
    for pid in worker_pids(server_pid):
        try:
            total += rss_mb(pid)
        except (FileNotFoundError, ProcessLookupError, AssertionError):
            pass  # it exited in the meantime
    return total
