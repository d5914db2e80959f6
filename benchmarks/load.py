"""A steady background load: N processes spinning in a busy loop.

On a VM a quiet machine can make cross-process wake-ups slower (idle cores sleep deeper), so
latency is measured both idle and with `BackgroundLoad(n)` running (`--background-load N`).
Owns: starting the busy loops and killing them (each by its pid) when the block ends, however
it ends. The loops are plain `python -c` processes: they import nothing and never touch the
engine. Not thread-safe: use one instance from one thread.
"""
from __future__ import annotations

import subprocess
import sys

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
