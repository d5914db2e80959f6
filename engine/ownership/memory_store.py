"""The in-process memory store: object values and the waiters for values not yet here (§3).

Owns `Value`, the record stored for an object once it has one (inline bytes, a location in
a node's shared-memory store, or a pickled error), and the rules for storing a value and
waking whoever waits for it. Values and waiters live in the object's `Reference` record of
the reference counter (one dict lookup per object on the hot path instead of two tables);
this module is the only code that sets them.

Waiters are of three kinds: a `TaskEntry` (a dependent task: the task manager resolves it),
a `BorrowerWait` (another process long-polls for the value: answered with the value) and
anything else with `ready_one()` (a blocked `get`/`wait`: the shell wakes it). Storing a
value returns them; it never calls them.

Pure: no sockets, threads or clocks. Not thread-safe: used with the core worker's lock held.
"""

from __future__ import annotations

from ..rpc import protocol as P

INLINE, SHM, ERROR = P.VALUE_INLINE, P.VALUE_SHM, P.VALUE_ERROR


class Value:
    """An object's value as this process knows it.

    * INLINE: `frames` hold the serialized value (small objects).
    * SHM: the primary copy is in the shared-memory store of node `node_id`, whose daemon
      listens at `daemon`; `frames` is None.
    * ERROR: `frames` hold a pickled exception that `get` raises.
    `size` is the serialized size in bytes (0 for errors). `packed`: an INLINE value's one
    frame if it is a pickle small enough to travel packed with others as a task argument
    (protocol.PACKED_ARG_MAX), else None.
    """

    __slots__ = ("kind", "frames", "daemon", "node_id", "size", "packed")

    def __init__(self, kind: int, frames: list | None, daemon: str | None, node_id: str | None, size: int):
        self.kind = kind
        self.frames = frames
        self.daemon = daemon
        self.node_id = node_id
        self.size = size
        self.packed = frames[0] if kind == INLINE and len(frames) == 1 and type(frames[0]) is bytes \
            and len(frames[0]) <= P.PACKED_ARG_MAX else None

    def __repr__(self) -> str:
        where = f" on {self.node_id}" if self.kind == SHM else ""
        return f"Value({('inline', 'shm', 'error')[self.kind]}, {self.size} B{where})"

    def to_meta(self, contains: list | None) -> list:
        """The wire form used in VALUE_REPLY and task argument metadata (see rpc/protocol.py)."""
        if self.kind == SHM:
            return [SHM, self.node_id, self.size, contains, self.daemon]
        return [self.kind, len(self.frames), contains]


def inline_value(frames: list, size: int) -> Value:
    return Value(INLINE, frames, None, None, size)


def shm_value(node_id: str, size: int, daemon_address: str) -> Value:
    """A value in the shared-memory store of node `node_id` (whose daemon is at `daemon_address`)."""
    return Value(SHM, None, daemon_address, node_id, size)


def error_value(frames: list) -> Value:
    return Value(ERROR, frames, None, None, 0)


def error_of(exc: BaseException) -> Value:
    """An error value raising `exc` on `get`."""
    from ..worker import serialization

    return error_value(serialization.serialize(exc)[0])


def value_from_meta(meta: list, frames: list, pos: int) -> tuple[Value, list | None]:
    """Reads a value from its wire metadata; inline payloads start at `frames[pos]`."""
    kind = meta[0]
    if kind == SHM:
        _, node_id, size, contains, daemon = meta[:5]
        return Value(SHM, None, daemon, node_id, size), contains
    n, contains = meta[1], meta[2]
    payload = frames[pos:pos + n]
    if kind == ERROR:
        return Value(ERROR, payload, None, None, 0), contains
    return Value(INLINE, payload, None, None, sum(map(len, payload))), contains


class BorrowerWait:
    """Another process asked for a value we do not have yet (GET_VALUE long poll)."""

    __slots__ = ("requester",)

    def __init__(self, requester: str):
        self.requester = requester


def add_waiter(ref, waiter) -> bool:
    """Makes `waiter` wait for `ref`'s value. True if the owner must be asked for it (a
    borrowed object nobody here has asked for yet)."""
    if ref.waiters is None:
        ref.waiters = [waiter]
    else:
        ref.waiters.append(waiter)
    if ref.owned or ref.requested:
        return False
    ref.requested = True
    return True


def remove_waiter(ref, waiter) -> None:
    waiters = ref.waiters
    if waiters and waiter in waiters:
        waiters.remove(waiter)
        if not waiters:
            ref.waiters = None


def set_value(ref, value: Value) -> list | None:
    """Stores `value` in `ref` (first value wins). Returns the waiters to signal."""
    if ref.value is not None:
        return None
    ref.value = value
    ref.size = value.size
    ref.requested = ref.owner_pending = False
    waiters = ref.waiters
    ref.waiters = None
    return waiters


def pending_at_owner(ref) -> list:
    """The owner of borrowed `ref` has no value yet either (VALUE_PENDING). Returns the
    get/wait waiters to tell: they are blocked for real now (their task gives its CPU back)."""
    if ref.value is not None or ref.owned:
        return []
    ref.owner_pending = True
    return [w for w in ref.waiters or () if hasattr(w, "nudge")]


def lose_value(ref) -> None:
    """The value's copy is gone (its node died); the record stays, waiting for a rebuild."""
    ref.value = None
