"""This process's task spans for the timeline: a bounded ring buffer the executor appends to.

Owns `SPANS`, one per process: a deque of `(task_id, name, owner, start, end, failed)`
tuples (times from `time.perf_counter()`; `EPOCH_OFFSET` turns them into Unix seconds),
holding the latest `OWNRUN_TIMELINE_EVENTS` spans (default 10,000); `appended()` minus the
length is how many were dropped. Always on: one tuple per task.

Thread-safety: the executor's threads append, the I/O thread copies (`snapshot`) with
`deque.copy()`, which runs under the GIL without yielding, so it never sees a half-done append.
"""

from __future__ import annotations

import collections
import itertools
import os
import time

SIZE = int(os.environ.get("OWNRUN_TIMELINE_EVENTS", "10000"))
EPOCH_OFFSET = time.time() - time.perf_counter()


class SpanBuffer:
    def __init__(self, size: int = SIZE):
        self.spans: collections.deque = collections.deque(maxlen=max(1, size))
        self._count = itertools.count()  # next() is atomic under the GIL
        self.total = 0

    def append(self, span: tuple) -> None:
        self.spans.append(span)
        self.total = next(self._count) + 1

    def snapshot(self) -> dict:
        spans = self.spans.copy()
        total = self.total
        return {"spans": [[task_id.hex(), name, owner, EPOCH_OFFSET + start, EPOCH_OFFSET + end, failed]
                          for task_id, name, owner, start, end, failed in spans],
                "dropped": max(0, total - len(spans)), "capacity": self.spans.maxlen}


SPANS = SpanBuffer()
