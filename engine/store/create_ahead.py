"""The object a process creates in its node's store ahead of its next `put`.

Owns: at most one such object per process — its id, its size and the request that creates
it (`Requests.start`: sent, answered or not yet). Does not own: the store (the daemon's
`ObjectStore.create(ahead=True)` reserves free arena room for it and counts it apart from
sealed objects), the put itself (`worker/objects.py`), or ids (the caller passes one in).

Why: a `put` that goes to shared memory must learn where to write, which took a round trip
to the daemon on every call (~200-360 µs on a quiet 2-core VM, more than copying 1 MiB
into warm pages). Puts of one size tend to follow each other (a frame, a batch, a buffer);
so when a put of `size` bytes is written, the object of the next put of that size is
created at once, and that next put finds its placement answered already — it writes and
seals with no wait. A put of another size aborts what was created ahead (`OBJ_ABORT`) and
creates its object as before; nothing is ever created ahead for more than `max_bytes`.

Thread-safety: `take` and `made` are atomic (a lock): two threads never get one object.
Failure: none here; what was created ahead of a process that dies is aborted by its daemon
(`ObjectStore.release_client`), like any object its writer never sealed. A create ahead the
daemon refuses (no free room) just means the next put takes the usual round trip.
"""

from __future__ import annotations

import threading

DEFAULT_MAX_BYTES = 8 << 20  # puts up to this size are created ahead (larger: memcpy dominates)


class CreatedAhead:
    """One object created ahead: its id, size, and the request `Requests.start` sent."""

    __slots__ = ("oid", "size", "request")

    def __init__(self, oid: bytes, size: int, request):
        self.oid, self.size, self.request = oid, size, request


class CreateAhead:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._next: CreatedAhead | None = None
        self.used = 0  # puts that found their object created ahead (stats, tests)
        self.aborted = 0  # objects created ahead for a size the next put did not have

    def take(self, size: int) -> tuple[CreatedAhead | None, bytes | None]:
        """For a put of `size` bytes: (the object created ahead for it, or None; the id of
        one created for another size, which the caller must abort, or None)."""
        with self._lock:
            ahead, self._next = self._next, None
        if ahead is None:
            return None, None
        if ahead.size == size:
            self.used += 1
            return ahead, None
        self.aborted += 1
        return None, ahead.oid

    def wanted(self, size: int) -> bool:
        """Whether to create an object ahead after a put of `size` bytes."""
        return 0 < size <= self.max_bytes and self._next is None

    def made(self, ahead: CreatedAhead) -> bytes | None:
        """Records `ahead` (its create request sent). Returns the id of the object it
        displaces (another thread created one meanwhile), which the caller must abort."""
        with self._lock:
            displaced, self._next = self._next, ahead
        if displaced is None:
            return None
        self.aborted += 1
        return displaced.oid
