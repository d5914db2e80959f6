"""This process's pins on objects of its node's store, kept past the last view for reuse.

Owns, per object this process holds one pin on at its node daemon: the object's `Placement`
(where its bytes are in the arena or a spill file) and how many live views of it the process
has handed out. A `get` of an object already here maps it again without asking the daemon
(`acquire`); the pin is dropped only once every view of it is gone and it has stayed unused
for `linger` seconds, or sooner when the process is about to create an object
(`take_unpins(everything=True)`), so the store can reuse the room. Unpins are sent in
batches by the core worker's I/O loop (or the thread about to `put`).

Safety (a view never sees reused memory): the daemon never deletes or moves a pinned
object; this cache holds its one pin while `views > 0`, and a view's finalizer only queues
`view_released` after the view (and everything derived from it) is gone. Counts are applied
under the lock by `take_unpins`, so `views` can only lag (a pin kept a little longer),
never lead.

Thread-safety: `acquire`, `add`, `take_unpins` take an internal lock (short, no I/O);
`view_released` is lock-free (a deque append) because it runs in finalizers, possibly
inside the GC of a thread that holds the lock. Failure: none (pure bookkeeping).
"""

from __future__ import annotations

import collections
import threading

from .object_store import Placement

LINGER_S = 0.1


class _Pinned:
    __slots__ = ("placement", "views", "idle_since")

    def __init__(self, placement: Placement, views: int, now: float):
        self.placement = placement
        self.views = views
        self.idle_since = now


class PinCache:
    def __init__(self, linger: float = LINGER_S):
        self.linger = linger
        self._lock = threading.Lock()
        self._pinned: dict[bytes, _Pinned] = {}
        self._released: collections.deque = collections.deque()  # oids of dead views

    def __len__(self) -> int:
        return len(self._pinned)

    def acquire(self, oid: bytes) -> Placement | None:
        """The placement of `oid` if this process holds a pin on it, counting one more view."""
        with self._lock:
            pinned = self._pinned.get(oid)
            if pinned is None:
                return None
            pinned.views += 1
            return pinned.placement

    def add(self, oid: bytes, placement: Placement, views: int, now: float) -> bool:
        """Records a pin the daemon just granted, with `views` views handed out. False if the
        process already held one (another thread raced us): the caller must release its extra
        pin at the daemon; its views are counted on the existing entry."""
        with self._lock:
            pinned = self._pinned.get(oid)
            if pinned is not None:
                pinned.views += views
                return False
            self._pinned[oid] = _Pinned(placement, views, now)
            return True

    def view_released(self, oid: bytes) -> None:
        """A view of `oid` died (any thread, finalizers included: never blocks)."""
        self._released.append(oid)

    def take_unpins(self, now: float, everything: bool = False) -> list[bytes]:
        """Applies dead views; removes and returns the objects whose pin should now be dropped:
        no live view, and unused for `linger` s (`everything`: unused at all)."""
        released = self._released
        with self._lock:
            pinned = self._pinned
            while released:
                entry = pinned.get(released.popleft())
                if entry is not None:
                    entry.views -= 1
                    if entry.views == 0:
                        entry.idle_since = now
            if not pinned:
                return []
            limit = now if everything else now - self.linger
            drop = [oid for oid, e in pinned.items() if e.views == 0 and e.idle_since <= limit]
            for oid in drop:
                del pinned[oid]
            return drop

    def validate_state(self) -> None:
        with self._lock:
            for oid, entry in self._pinned.items():
                assert entry.views >= 0, f"{oid.hex()}: negative view count"
