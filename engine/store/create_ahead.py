"""The object a process creates in its node's store ahead of its next `put`.

Owns: up to `DEPTH` such objects per process — their ids, sizes and the requests that
create them (`Requests.prepare`: sent, answered or not yet). Does not own: the store (the daemon's
`ObjectStore.create(ahead=True)` reserves free arena room for it and counts it apart from
sealed objects), the put itself (`worker/objects.py`), or ids (the caller passes one in).

Why: a `put` that goes to shared memory must learn where to write, which took a round trip
to the daemon on every call (~200-360 µs on a quiet 2-core VM, more than copying 1 MiB
into warm pages). Puts of one size tend to follow each other (a frame, a batch, a buffer);
so when a put of `size` bytes is written, the objects of the next two puts of that size are
created at once (one more after each put), and the next put finds its placement answered
already — it writes and seals with no wait. Two, because a put right after another one
(a tight loop: ~0.4 ms apart here) would otherwise wait for the answer to the create sent
with the previous put's seal, a daemon wake-up away. A put of another size aborts what was
created ahead (`OBJ_ABORT`) and creates its object as before; nothing is ever created ahead
for more than `max_bytes`, so a process holds at most 2 x 4 MiB of unsealed room.

Thread-safety: `take` and `made` are atomic (a lock): two threads never get one object;
`wanted` reads without it (a stale count is corrected by `made`).
Failure: none here; what was created ahead of a process that dies is aborted by its daemon
(`ObjectStore.release_client`), like any object its writer never sealed. A create ahead the
daemon refuses (no free room) just means the next put takes the usual round trip.
"""

from __future__ import annotations

import collections
import threading

DEFAULT_MAX_BYTES = 4 << 20  # puts up to this size are created ahead (larger: memcpy dominates)
DEPTH = 2  # objects created ahead at once: a put in a tight loop finds the older one answered


class CreatedAhead:
    """One object created ahead: its id, size, and the request `Requests.prepare` made."""

    __slots__ = ("oid", "size", "request")

    def __init__(self, oid: bytes, size: int, request):
        self.oid, self.size, self.request = oid, size, request


class CreateAhead:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, depth: int = DEPTH):
        self.max_bytes = max_bytes
        self.depth = depth
        self._lock = threading.Lock()
        self._ahead: collections.deque[CreatedAhead] = collections.deque()  # oldest first
        self.used = 0  # puts that found their object created ahead (stats, tests)
        self.aborted = 0  # objects created ahead for a size the next put did not have

    def take(self, size: int) -> tuple[CreatedAhead | None, list[bytes]]:
        """For a put of `size` bytes: (the oldest object created ahead for it, or None; the
        ids of those created for another size, which the caller must abort)."""
        with self._lock:
            ahead = self._ahead
            if not ahead:
                return None, []
            if ahead[0].size == size:
                self.used += 1
                return ahead.popleft(), []
            stale = [a.oid for a in ahead]
            ahead.clear()
            self.aborted += len(stale)
        return None, stale

    def wanted(self, size: int) -> int:
        """How many objects to create ahead after a put of `size` bytes."""
        if not 0 < size <= self.max_bytes:
            return 0
        return max(0, self.depth - len(self._ahead))

    def made(self, ahead: CreatedAhead) -> bytes | None:
        """Records `ahead` (its create request made). Returns the id of the object it
        displaces (other threads created more meanwhile), which the caller must abort."""
        with self._lock:
            self._ahead.append(ahead)
            if len(self._ahead) <= self.depth:
                return None
            self.aborted += 1
            return self._ahead.popleft().oid
