"""This process's timeline events: a bounded ring buffer the executor, the owner's task
manager and the node daemon append to (engine/state/trace.py turns them into a Chrome trace).

Owns `EVENTS`, one per process: a deque of records of one shape,

    (category, id, name, detail, start, end, error)

times from `time.perf_counter()` (CLOCK_MONOTONIC on Linux, the clock `time.monotonic()`
reads too, shared by the processes of a machine; `EPOCH_OFFSET` turns them into Unix
seconds), `end` None for an instant event, `error` None/False or what went wrong:

    category    where                    id          name            detail
    "task"      the executor             task id     function        owner address
    "fetch"     the executor             object id   task            bytes (an argument read from the store)
    "transfer"  the node daemon          object id   source daemon   bytes (a pull from another node)
    "lease"     the owner (request ->    request id  resources       node granted
                grant or answer)
    "retry"     the owner (instant)      task id     task            why
    "failure"   the owner (instant)      task id     task            why

It holds the latest `OWNRUN_TIMELINE_EVENTS` records (default 10,000; 0 records nothing,
for measuring what recording costs); `total` minus the length is how many were dropped. Always on: a task costs one tuple append (measured on
`ownrun bench --quick`: within noise); the other kinds are not per task.

Thread-safety: the executor's threads append, the I/O thread (with the core worker's lock)
records owner events and copies (`snapshot`) with `deque.copy()`, which runs under the GIL
without yielding, so it never sees a half-done append. `owner_event` is called with the
core worker's lock held (its lease table is not locked otherwise).
"""

from __future__ import annotations

import collections
import itertools
import os
import time

SIZE = int(os.environ.get("OWNRUN_TIMELINE_EVENTS", "10000"))
EPOCH_OFFSET = time.time() - time.perf_counter()


class EventBuffer:
    def __init__(self, size: int = SIZE):
        self.events: collections.deque = collections.deque(maxlen=max(1, size))
        self._count = itertools.count()  # next() is atomic under the GIL
        self.total = 0
        self.leases_waiting: dict = {}  # lease request id -> (asked at, resources): at most `size`
        if size <= 0:  # off: both entry points do nothing
            self.append = self.owner_event = _ignore

    def append(self, event: tuple) -> None:
        self.events.append(event)
        self.total = next(self._count) + 1

    def owner_event(self, kind: str, key, name, detail) -> None:
        """The task manager's hook (`TaskManager.on_event`): a lease asked for or answered
        (a span from request to answer), a retry or a failure (instant events)."""
        now = time.perf_counter()
        if kind == "lease_asked":
            waiting = self.leases_waiting
            if key not in waiting:  # a spilled-back or re-sent request keeps its first time
                if len(waiting) >= self.events.maxlen:
                    del waiting[next(iter(waiting))]
                waiting[key] = (now, name)
        elif kind == "lease_answered":
            asked = self.leases_waiting.pop(key, None)
            if asked is not None:  # name: the node granting; detail: an error, or None
                self.append(("lease", key, _resources(asked[1]), name, asked[0], now, detail))
        else:
            self.append((kind, key, name, detail, now, None, kind == "failure"))

    def snapshot(self) -> dict:
        events = self.events.copy()
        total = self.total
        return {"events": [[category, _hex(key), name, detail, EPOCH_OFFSET + start,
                            None if end is None else EPOCH_OFFSET + end, error]
                           for category, key, name, detail, start, end, error in events],
                "dropped": max(0, total - len(events)), "capacity": self.events.maxlen, "pid": os.getpid()}


def _ignore(*args) -> None:
    pass


def _hex(key):
    return key.hex() if isinstance(key, bytes) else key


def _resources(resources) -> str:
    if not isinstance(resources, dict):
        return str(resources)
    return ", ".join(f"{k}={v:g}" for k, v in sorted(resources.items()) if v) or "no resources"


EVENTS = EventBuffer()
