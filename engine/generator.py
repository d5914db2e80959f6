"""`ObjectRefGenerator`: what `.remote()` of a `num_returns="streaming"` task returns (Ray's name);
`DynamicObjectRefGenerator`: what `get` of a `num_returns="dynamic"` task's one ref gives.

Owns the caller's side of a streaming generator task: iterating yields an `ObjectRef` per item
the task yields, in order, as soon as the item has arrived at this process (the owner), so a
consumer can start on item 1 while the task computes item 2. When the task raises, the next
ref's value is that error (`get` raises it), then iteration stops; when the task's worker or
node dies, likewise with the engine's error. The items' records and counts live in the task
manager (`TaskManager.streams`); this object only remembers how many it handed out.

Iterate it in one thread at a time (as a Python generator). It cannot be passed to another
task or pickled (its items can). Dropping it releases the items it never handed out (applied
by the core worker with the other dropped refs). Failures: `GetTimeoutError` from
`next_ready(timeout=)`; the engine's error if this process's node died or ownrun shut down.
"""

from __future__ import annotations

import time

from . import errors, ids
from .object_ref import ObjectRef


class ObjectRefGenerator:
    def __init__(self, core, task_id: bytes):
        self._core = core
        self._task_id = task_id
        self._handed_out = 0

    def __iter__(self) -> ObjectRefGenerator:
        return self

    def __next__(self) -> ObjectRef:
        return self._next(None)

    def next_ready(self, timeout: float | None = None) -> ObjectRef:
        """The next item's ref, waiting at most `timeout` s for the task to yield it
        (StopIteration at the end; GetTimeoutError if it did not come in time)."""
        return self._next(timeout)

    def _next(self, timeout: float | None) -> ObjectRef:
        from .worker.objects import Waiter

        core = self._core
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            core.check_local_node()
            with core.lock:
                stream = core.tm.streams.get(self._task_id)
                if stream is None or stream.released:
                    raise StopIteration
                if stream.count > self._handed_out:
                    self._handed_out += 1  # the ref takes over the stream's count on the item
                    return ObjectRef(ids.return_id(self._task_id, self._handed_out), core.address,
                                     core.ref_ops)
                if stream.done:
                    raise StopIteration
                waiter = Waiter(1)
                stream.waiters.append(waiter)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not waiter.event.wait(left):
                with core.lock:
                    if waiter in stream.waiters:
                        stream.waiters.remove(waiter)
                raise errors.GetTimeoutError(f"no item of the streaming task came within {timeout} s")

    def task_id(self) -> bytes:
        return self._task_id

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._task_id.hex()}, {self._handed_out} handed out)"

    def __reduce__(self):
        raise TypeError("an ObjectRefGenerator cannot be passed to a task or pickled: pass its items")

    def __del__(self):
        try:
            self._core.released_streams.append((self._task_id, self._handed_out))
        except AttributeError:  # half-built (the constructor failed)
            pass


class DynamicObjectRefGenerator:
    """What `get` of a `num_returns="dynamic"` task's ref gives (Ray's name): the refs of the
    items its generator yielded, in order. The value of that ref holds them (they live as long
    as it does, or as the refs taken from here); it can be passed to tasks and pickled."""

    def __init__(self, refs: list):
        self._refs = list(refs)

    def __iter__(self):
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"
