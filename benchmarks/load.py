"""The machine's load: a steady background load of N busy loops, and the CPUs' busy share.

On a VM a quiet machine can make cross-process wake-ups slower (idle cores sleep deeper), so
latency is measured both idle and with `BackgroundLoad(n)` running (`--background-load N`).
Owns: starting the busy loops and killing them (each by its pid) when the block ends, however
it ends (the loops are plain `python -c` processes: they import nothing and never touch the
engine; not thread-safe: use one instance from one thread); reading the CPUs' jiffies from
/proc/stat (`cpu_times`); and waiting for the machine to be quiet before a run
(`wait_until_quiet`: an overloaded run's processes take seconds to drain and exit, and the
next run started meanwhile measures them too).
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BUSY_LOOP = "while True:\n    pass\n"


class BackgroundLoad:
    """`with BackgroundLoad(2): ...` runs the block with two busy-loop processes."""

    def __init__(self, processes: int) -> None:
        self.processes = max(0, processes)
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> BackgroundLoad:
        try:
            for _ in range(self.processes):
                self._procs.append(subprocess.Popen([sys.executable, "-c", BUSY_LOOP],
                                                    stdin=subprocess.DEVNULL))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def stop(self) -> None:
        for proc in self._procs:
            proc.kill()
        for proc in self._procs:
            proc.wait()
        self._procs.clear()


def cpu_times() -> tuple[int, int, int]:
    """(total, idle, steal) jiffies of all CPUs since boot (idle includes iowait). Guest time
    is already in user time, so it is left out of the total."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields[:8]), fields[3] + fields[4], fields[7]


def wait_until_quiet(idle_share: float = 0.8, window_s: float = 1.0, deadline_s: float = 30.0) -> float:
    """Waits until the CPUs were at least `idle_share` idle over one `window_s`, for at most
    `deadline_s` (a machine busy with other work is measured busy, as before). Returns the
    idle share of the last window."""
    give_up = time.monotonic() + deadline_s
    while True:
        total0, idle0, _ = cpu_times()
        time.sleep(window_s)  # (a measurement window, not a wait for a state)
        total1, idle1, _ = cpu_times()
        idle = (idle1 - idle0) / (total1 - total0) if total1 > total0 else 1.0
        if idle >= idle_share or time.monotonic() >= give_up:
            return idle
