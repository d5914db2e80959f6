"""`ObjectRef`: a future for a value that may not exist yet and may live elsewhere.

Owns the ref's identity (object id + owner address) and the hooks that keep the owning
process's reference counts right: creating a ref counts it, `__del__` un-counts it, and
pickling a ref (passing it nested in a value) records it as contained in that value.

`__del__` never blocks and takes no lock: it appends to the core worker's lock-free
deque of count changes, which the worker applies under its own lock (DESIGN.md §4).
Thread-safe.
"""

from __future__ import annotations

import threading

_tls = threading.local()

# The process's core worker, set by engine.init() or by a worker process at start-up.
_worker = None


def set_worker(worker) -> None:
    global _worker
    _worker = worker


def current_worker():
    return _worker


class ObjectRef:
    """A reference to an object owned by the process at `owner`."""

    __slots__ = ("id", "owner", "_counted", "__weakref__")

    def __init__(self, oid: bytes, owner: str | None = None, _counted=None):
        self._counted = _counted  # the deque that counted us, or None
        if type(oid) is not bytes:
            raise TypeError(f"ObjectRef() takes the object id as bytes, not {type(oid).__name__}")
        self.id = oid
        self.owner = owner  # None for `ObjectRef(id_bytes)`: an id only, nobody to ask for the value

    def __class_getitem__(cls, item):  # `ObjectRef[int]` in annotations, as Ray's is generic
        import types

        return types.GenericAlias(cls, item)

    def hex(self) -> str:
        return self.id.hex()

    def binary(self) -> bytes:
        return self.id

    @classmethod
    def from_binary(cls, oid: bytes) -> ObjectRef:
        return cls(oid)

    def future(self):
        """A `concurrent.futures.Future` that completes with the value (or its error)."""
        from concurrent.futures import Future

        if _worker is None:
            raise RuntimeError("ownrun is not initialized: call engine.init() first")
        fut = Future()
        fut.set_running_or_notify_cancel()

        def done(_ready):  # may run with the core worker's lock held: read the value elsewhere
            threading.Thread(target=_set_future, args=(fut, self), daemon=True,
                             name="ownrun-ref-future").start()

        _worker.on_ready(self, done)
        return fut

    def as_future(self):
        """An `asyncio.Future` of the value, for the running event loop (Ray's `as_future`)."""
        import asyncio

        return asyncio.wrap_future(self.future())

    def __repr__(self) -> str:
        return f"ObjectRef({self.id.hex()})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ObjectRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __del__(self):
        counted = self._counted
        if counted is not None:
            counted.append((self.id, self.owner, -1))

    def __reduce__(self):
        contained = getattr(_tls, "contained", None)
        if contained is not None:
            contained.append([self.id, self.owner])
        return (_rebuild_ref, (self.id, self.owner))

    # Ray compatibility: `await ref` inside async actors and `ref.future()`.
    def __await__(self):
        return self.future_asyncio().__await__()

    def future_asyncio(self):
        import asyncio

        loop = asyncio.get_running_loop()
        worker = _worker
        fut = loop.create_future()

        def done(_value_ready):
            loop.call_soon_threadsafe(_set_result_from_get, fut, self)

        worker.on_ready(self, done)
        return fut


def _set_result_from_get(fut, ref) -> None:
    if fut.done():
        return
    try:
        fut.set_result(_worker.get([ref], timeout=None)[0])
    except BaseException as exc:  # noqa: BLE001 - delivered to the awaiting coroutine
        fut.set_exception(exc)


def _set_future(fut, ref) -> None:
    try:
        fut.set_result(_worker.get([ref], timeout=None)[0])
    except BaseException as exc:  # noqa: BLE001 - delivered to whoever waits on the future
        fut.set_exception(exc)


def _rebuild_ref(oid: bytes, owner: str) -> ObjectRef:
    worker = _worker
    received = getattr(_tls, "received", None)
    if received is not None:
        received.append([oid, owner])
    if worker is None:
        return ObjectRef(oid, owner)
    ops = worker.ref_ops
    ops.append((oid, owner, 1))
    return ObjectRef(oid, owner, ops)


class collect_contained:
    """Context manager: collects the refs pickled while it is active (per thread)."""

    __slots__ = ("refs", "_prev")

    def __enter__(self) -> list:
        self._prev = getattr(_tls, "contained", None)
        self.refs = []
        _tls.contained = self.refs
        return self.refs

    def __exit__(self, *exc) -> None:
        _tls.contained = self._prev


class collect_received:
    """Context manager: collects the refs unpickled while it is active (per thread)."""

    __slots__ = ("refs", "_prev")

    def __enter__(self) -> list:
        self._prev = getattr(_tls, "received", None)
        self.refs = []
        _tls.received = self.refs
        return self.refs

    def __exit__(self, *exc) -> None:
        _tls.received = self._prev
