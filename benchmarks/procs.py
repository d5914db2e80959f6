"""Memory, CPU time and process counts of the driver's process tree, for the benchmarks.

Owns: finding the driver's descendant processes and summing their RSS, PSS and CPU time.
Does not: know anything about the engine (an embedded cluster's head, node daemons and
workers are simply the driver's descendants).
RSS counts a shared page once per process that maps it, so its sum overstates the tree;
PSS (Linux, psutil's memory_full_info) splits each shared page among its sharers, so PSS
sums are the honest total. Processes that exit or deny access mid-measurement are skipped.
Needs psutil (the `bench` and `test` extras); `AVAILABLE` says whether it is installed.
"""
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

try:
    import psutil
except ImportError:  # pragma: no cover - depends on the extras installed
    psutil = None

AVAILABLE = psutil is not None
MISSING = "needs psutil: pip install 'ownrun[bench]'"
MiB = 2**20


@dataclass(frozen=True)
class Memory:
    """Summed memory of a set of processes, in bytes; `pss` is None where unavailable."""

    processes: int
    rss: int
    pss: int | None


def descendants(root_pid: int | None = None) -> set[int]:
    """Pids of every process below `root_pid` (default: this process)."""
    root = psutil.Process(root_pid or os.getpid())
    return {p.pid for p in root.children(recursive=True)}


def measure(pids: Iterable[int]) -> Memory:
    """Sum RSS and PSS over `pids`, skipping processes that are gone or inaccessible."""
    count, rss, pss = 0, 0, 0
    pss_known = True
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            try:
                info = proc.memory_full_info()
                if getattr(info, "pss", None) is None:
                    pss_known = False
                pss += getattr(info, "pss", 0)
            except psutil.AccessDenied:
                info = proc.memory_info()
                pss_known = False
            rss += info.rss
            count += 1
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return Memory(count, rss, pss if pss_known else None)


def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds used so far by `root_pid` and its live descendants (a
    process that exited takes its time with it)."""
    total = 0.0
    try:
        procs = [psutil.Process(root_pid)]
        procs += procs[0].children(recursive=True)
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return total
    for proc in procs:
        try:
            times = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        total += times.user + times.system
    return total


def measure_tree(root_pid: int | None = None) -> Memory:
    """Memory of `root_pid` (default: this process) and all its descendants."""
    root = root_pid or os.getpid()
    return measure([root, *descendants(root)])


def settled_tree(deadline_s: float = 5.0, interval_s: float = 0.25) -> Memory:
    """`measure_tree()` once the tree stops changing: two samples in a row with the same
    process count and RSS within 2 %, or the last sample when `deadline_s` runs out
    (worker pools may still be starting processes right after init)."""
    end = time.monotonic() + deadline_s
    last = measure_tree()
    while time.monotonic() < end:
        time.sleep(interval_s)
        now = measure_tree()
        if now.processes == last.processes and abs(now.rss - last.rss) <= 0.02 * last.rss:
            return now
        last = now
    return last


def still_alive(pids: Iterable[int], timeout_s: float) -> set[int]:
    """Wait up to `timeout_s` for `pids` to exit; return those still running."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    return {p.pid for p in alive if _running(p)}


def _running(proc: "psutil.Process") -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
