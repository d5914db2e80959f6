"""Where an owner asks for a worker lease, and how deep it pipelines tasks on one (§3).

Owns two decisions of the normal-task submitter:
* locality: a task goes first to the node holding most of its arguments' bytes in shared
  memory (not the owner's own node, not a node known dead: then the local daemon decides);
* pipelining depth: short tasks (measured moving-average run time <= 1 ms) may be queued
  up to `max_in_flight` deep on one leased worker; longer or unmeasured ones one at a time,
  so a long task never waits behind another while CPUs idle.

Pure: no sockets, threads or clocks (run times are reported by the worker). Not
thread-safe: used with the core worker's lock held.
"""

from __future__ import annotations

SHORT_TASK_S = 0.001
_SMOOTHING = 0.2


class LeasePolicy:
    def __init__(self, max_in_flight: int = 8):
        self.max_in_flight = max_in_flight
        self.runtime: dict[str, float] = {}  # function id -> moving average of run time (s)

    def task_ran(self, fn_id: str, seconds: float) -> None:
        previous = self.runtime.get(fn_id)
        self.runtime[fn_id] = seconds if previous is None else \
            (1 - _SMOOTHING) * previous + _SMOOTHING * seconds

    def depth(self, entry) -> int:
        """How many tasks like `entry` may be in flight on one worker."""
        runtime = self.runtime.get(entry.fn_id)
        if runtime is None or runtime > SHORT_TASK_S:
            return 1
        return self.max_in_flight

    @staticmethod
    def locality(bytes_by_daemon: dict[str, int] | None, local_daemon: str, dead: set) -> str | None:
        """The daemon to ask first: the one holding most argument bytes, unless it is ours
        or dead (None: ask our own daemon)."""
        if not bytes_by_daemon:
            return None
        best = max(bytes_by_daemon, key=bytes_by_daemon.get)
        if best == local_daemon or best in dead:
            return None
        return best
