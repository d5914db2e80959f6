"""`put`, `get`, `wait` of the core worker: the blocking, I/O side of the memory store.

Owns what a user thread does to store or read objects: serializing a value inline or into
the node's shared-memory store, blocking on a `Waiter` until values arrive (the task
manager records waiters and tells the shell whom to wake), reading shared-memory values
(fetched by the node daemon from another node if needed; mapped again without a round
trip while this process holds a pin on it, `store/pin_cache.py`, which a `put` keeps and
unused pins leave in batches), reporting the secondary copy
that made to the object's owner, and waiting for a lost object to be rebuilt.

Functions of a `CoreWorker` (`core`), called from user threads without its lock; each
takes the lock only around task-manager calls and applies the resulting instructions.
Failures: every wait has a deadline or ends on a node-death notice; errors stored as
values are raised as the exception they carry.
"""

from __future__ import annotations

import threading
import time

from .. import errors, ids
from ..head.liveness import DEFAULT_DEAD_AFTER
from ..ownership.memory_store import ERROR, INLINE, SHM, inline_value, shm_value
from ..rpc import protocol as P
from ..rpc.transport import pack
from ..state import callsites
from ..store.create_ahead import CreatedAhead
from ..util.lazy_event import LazyEvent
from . import cancellation, serialization
from .requests import remote_error


class Waiter:
    """Signals a `get`/`wait` caller once `needed` of its objects have values (a `get`'s at
    once when one of them is an error, as Ray raises without waiting for the rest).

    `must_block`: the caller waits for a value nobody has yet (an object we own, or a borrowed
    one its owner said is pending: `nudge`), not just for the owner's answer: only then does a
    task's worker give its CPU back (Ray: only a get that has to block releases resources)."""

    __slots__ = ("needed", "event", "callback", "stop_on_error", "done", "must_block")

    def __init__(self, needed: int, callback=None, stop_on_error: bool = False):
        self.needed = needed
        self.event = LazyEvent() if callback is None else None
        self.callback = callback
        self.stop_on_error = stop_on_error
        self.done = False
        self.must_block = False

    def ready_one(self, failed: bool = False) -> None:
        self.needed -= 1
        if failed and self.stop_on_error:
            self.done = True
            self.event.set()
        elif self.needed == 0:
            if self.callback is not None:
                self.callback(True)
            else:
                self.done = True
                self.event.set()

    def nudge(self) -> None:
        """A borrowed object's owner has no value yet either: the caller blocks for real."""
        if not self.must_block and self.event is not None:
            self.must_block = True
            self.event.set()


def put(core, value):
    frames, contains = serialization.serialize(value)
    size = serialization.frames_size(frames)
    if core.ref_ops:  # free what was dropped first, so its memory can be reused
        with core.lock:
            core._apply_ref_ops()
    if size < core.inline_threshold:
        oid = ids.put_id(core.next_id())
        stored = inline_value([bytes(f) if not isinstance(f, bytes) else f for f in frames], size)
    else:
        oid = _put_shm(core, frames)
        stored = shm_value(core.node_id, size, core.daemon_address)
    with core.lock:
        core._apply_ref_ops()
        core.tm.put(oid, stored, contains)
        if callsites.ENABLED:
            core.callsites.record((oid,), callsites.caller(), core.tm.refs.refs)
        core.apply()
        return core.new_ref(oid)


def _put_shm(core, frames: list) -> bytes:
    """Writes a put's value into the node's store and returns its new id. The object was
    created ahead if the last puts had this size (no round trip: `store/create_ahead.py`);
    those of the next puts of this size are created here too. What we tell our daemon
    after the write (unpins, the seal, the next creates) goes in one write: one wake-up."""
    total, chunks = serialization.shm_layout(frames)
    ahead, stale = core.put_ahead.take(total)
    messages = [_abort_message(core, oid) for oid in stale]
    placement = None
    if ahead is not None:
        try:
            placement, oid = _placement(core.requests.wait(ahead.request)), ahead.oid
        except errors.EngineError:  # refused (no free room) or unanswered: create it now
            messages.append(_abort_message(core, ahead.oid))
    messages += _unpin_messages(core, everything=True)  # room only our cached pins hold
    if placement is None:
        if messages:  # goes before the create: it frees room
            core.transport.send_many(core.daemon_address, messages)
            messages = []
        oid = ids.put_id(core.next_id())
        placement = _placement(core.call(core.daemon_address, P.OBJ_CREATE, oid, total,
                                         core.address, core.worker_id))
    messages.append(_write(core, oid, placement, chunks, keep_pin=True))
    for _ in range(core.put_ahead.wanted(total)):
        messages += _create_ahead(core, total)
    core.transport.send_many(core.daemon_address, messages)
    return oid


def _create_ahead(core, size: int) -> list:
    """The messages that create the object of a later put (of `size` bytes) ahead."""
    oid = ids.put_id(core.next_id())
    try:
        request, create = core.requests.prepare(core.daemon_address, P.OBJ_CREATE, oid, size,
                                                core.address, core.worker_id, True)
    except errors.EngineError:
        return []  # our daemon is gone: the next put says so
    displaced = core.put_ahead.made(CreatedAhead(oid, size, request))
    return [create] if displaced is None else [create, _abort_message(core, displaced)]


def _abort_message(core, oid: bytes) -> list:
    return [pack([P.OBJ_ABORT, core.worker_id, oid])]


def write_shm(core, oid: bytes, frames: list, owner_address: str) -> int:
    """Writes object `oid` (a task's return value) into the node's store; returns its size."""
    total, chunks = serialization.shm_layout(frames)
    unpin(core, everything=True)  # room held only by our cached pins can be reused first
    result = core.call(core.daemon_address, P.OBJ_CREATE, oid, total, owner_address, core.worker_id)
    core.transport.send(core.daemon_address, _write(core, oid, _placement(result), chunks, keep_pin=False))
    return total


def _write(core, oid: bytes, placement, chunks, keep_pin: bool) -> list:
    """Writes the object's bytes where our daemon placed them; returns the seal message.
    `keep_pin` (a `put`): the creating pin becomes a read pin cached in the process, so
    reading our own put needs no round trip."""
    if not placement.exists:  # a re-executed task may recreate a sealed object
        core.arena.write(placement, chunks)
    keep = keep_pin and core.pins.add(oid, placement, 0, time.monotonic())
    return [pack([P.OBJ_SEAL, core.worker_id, oid, keep])]


def unpin(core, everything: bool = False) -> None:
    """Drops, in one message, the cached pins no view needs any more (any thread)."""
    for message in _unpin_messages(core, everything):
        core.transport.send(core.daemon_address, message)


def _unpin_messages(core, everything: bool) -> list:
    oids = core.pins.take_unpins(time.monotonic(), everything)
    return [[pack([P.OBJ_RELEASE, core.worker_id, oids])]] if oids else []


def materialize(core, oid: bytes, value, deadline: float | None = None, owner: str | None = None):
    """The Python object of `value`. A shared-memory value is mapped zero-copy; if its copy was
    on another node, our daemon pulls it and we tell the owner where the new copy is."""
    kind = value.kind
    if kind == INLINE:
        return serialization.deserialize(value.frames, [])
    if kind == ERROR:
        raise _as_raisable(serialization.deserialize(value.frames))
    pins = core.pins
    cached = pins.acquire(oid)
    if cached is not None:  # pinned by this process already: map it again, no round trip
        return _view(core, oid, cached)
    placement = _pinned_placement(core, oid, value, deadline)
    if placement is None:
        raise errors.ObjectLostError(f"object {oid.hex()} is no longer in the object store of node "
                                     f"{value.node_id} (it was freed or its node failed)")
    if value.daemon != core.daemon_address and owner is not None:
        _report_copy(core, oid, owner)
    placement = _placement(placement)
    _keep_pin(core, oid, placement, views=1)
    return _view(core, oid, placement)


def _keep_pin(core, oid: bytes, placement, views: int) -> None:
    """Records the pin our daemon took for us on `oid` (with `views` reading it now); if
    another thread of ours pinned it meanwhile, the daemon's extra pin is released at once."""
    if not core.pins.add(oid, placement, views, time.monotonic()):
        core.transport.send(core.daemon_address, [pack([P.OBJ_RELEASE, core.worker_id, [oid]])])


def _pinned_placement(core, oid: bytes, value, deadline: float | None):
    """Our daemon's placement of `oid`, pinned for this process (pulled first if its copy is on
    another node; None if it is gone). A fetch must not outlast get()'s timeout (GetTimeoutError;
    without one, the RPC timeout: NodeUnreachableError), but the daemon pins the object when the
    pull lands, answer or not: a late answer's pin becomes one of our cached pins, released with
    them, so a timed-out get leaks none."""
    answer: dict = {}
    done = threading.Event()

    def answered(ok, placement):  # I/O thread (or a death notice), core lock held
        if answer.get("abandoned"):
            if ok and placement is not None:
                _keep_pin(core, oid, _placement(placement), views=0)
            return
        answer["ok"], answer["result"] = ok, placement
        done.set()

    core.call_async(core.daemon_address, P.OBJ_GET, oid, core.worker_id, value.daemon, callback=answered)
    limit = deadline if deadline is not None else time.monotonic() + core.config["rpc_timeout"]
    if not done.wait(max(0.0, limit - time.monotonic())):
        with core.lock:  # the answer is taken under it: it either arrived, or it is abandoned
            if not done.is_set():
                answer["abandoned"] = True
                if deadline is None:
                    raise errors.NodeUnreachableError(f"no answer from {core.daemon_address} to a read of "
                                                      f"object {oid.hex()} within {core.config['rpc_timeout']:.0f}s")
                raise errors.GetTimeoutError(f"get timed out fetching object {oid.hex()} from node "
                                             f"{value.node_id}")
    if not answer["ok"]:
        raise remote_error(answer["result"])
    return answer["result"]


def _view(core, oid: bytes, placement):
    """The value over a new view of a pinned object; the view's death is counted in `pins`."""
    released = core.pins.view_released
    try:
        view = core.arena.view_with_release(placement, lambda: released(oid))
    except BaseException:
        released(oid)
        raise
    return serialization.deserialize(serialization.frames_from_shm(view), [])


def _report_copy(core, oid: bytes, owner: str, lock_held: bool = False) -> None:
    """Our node now holds a secondary copy: the owner can pin it if the primary is lost."""
    if owner == core.address:
        if lock_held:
            core.tm.copy_made(oid, core.daemon_address, core.node_id)
        else:
            with core.lock:
                core.tm.copy_made(oid, core.daemon_address, core.node_id)
    else:
        core.transport.send(owner, [pack([P.OBJ_COPIED, oid, core.daemon_address, core.node_id])])


def get(core, refs: list, timeout: float | None):
    deadline = None if timeout is None else time.monotonic() + timeout
    with core.lock:
        core._apply_ref_ops()
        waiter, values = core.tm.wait_for_values(refs, lambda missing, ready: Waiter(missing, None, True))
        failed = waiter is not None and any(v is not None and v.kind == ERROR for v in values)
        if failed:  # one already holds an error: raise it now, as Ray does, not after the others
            core.tm.stop_waiting(refs, waiter)
            waiter = None
        elif waiter is not None and core.executor is not None:
            waiter.must_block = _must_block(core, refs)
        core.apply()
    if failed:
        for r, value in zip(refs, values, strict=True):
            if value is not None and value.kind == ERROR:
                materialize(core, r.id, value, deadline, r.owner)  # raises it
    if waiter is not None:
        _block_on(core, waiter, deadline, refs)
        with core.lock:
            table = core.tm.refs.refs
            values = [table[r.id].value if r.id in table else None for r in refs]
            early = waiter.needed > 0
            if early:  # woken by an error: stop waiting for the others
                core.tm.stop_waiting(refs, waiter)
        if early:
            for r, value in zip(refs, values, strict=True):
                if value is not None and value.kind == ERROR:
                    materialize(core, r.id, value, deadline, r.owner)  # raises it
    out = []
    for r, value in zip(refs, values, strict=True):
        if value is None:
            raise errors.ObjectLostError(f"object {r.id.hex()} has no value")
        try:
            out.append(materialize(core, r.id, value, deadline, r.owner))
        except errors.ObjectLostError as exc:
            if value.kind != SHM or isinstance(exc, errors.OwnerDiedError):
                raise
            if r.owner in core.tm.dead_processes:
                raise errors.OwnerDiedError(f"object {r.id.hex()} is lost: its owner {r.owner} died") from None
            out.append(_get_rebuilt(core, r, value, deadline))
    return out


def _must_block(core, refs) -> bool:
    """Whether a get/wait of `refs` waits for a value nobody has yet (lock held): one we own,
    or a borrowed one whose owner said so. Otherwise it only waits for owners' answers."""
    table = core.tm.refs.refs
    for r in refs:
        ref = table.get(r.id)
        if ref is not None and ref.value is None and (ref.owned or ref.owner_pending):
            return True
    return False


def _block_on(core, waiter: Waiter, deadline, refs) -> None:
    """Blocks until `waiter` is ready. In a task, the worker gives its CPU back to its node
    while blocked — only once it must block (`Waiter.must_block`), not while it waits for an
    owner to send a value that is ready. A cancel wakes it: TaskCancelledError (cancellation.py)."""
    guard = cancellation.current() if core.executor is not None else None
    may_release = core.mode == "worker" and core.executor is not None and core.executor.holds_lease()
    blocked = False
    event = waiter.event
    try:
        if guard is not None:
            guard.block_on(waiter)
        try:
            while True:
                if may_release and waiter.must_block and not blocked:
                    blocked = True
                    core.transport.send(core.daemon_address, [pack([P.WORKER_BLOCKED, core.worker_id])])
                ok = core.wait_reading(event, None if deadline is None else max(0.0, deadline - time.monotonic()))
                if not ok or waiter.done or (guard is not None and guard.cancelled):
                    break
                event.clear()  # nudged: it must block now (and give the CPU back) -- wait again
                if waiter.done or (guard is not None and guard.cancelled):
                    break  # (set between the check and the clear: not lost)
        finally:
            if blocked:
                core.transport.send(core.daemon_address, [pack([P.WORKER_UNBLOCKED, core.worker_id])])
        if guard is not None:
            guard.unblocked()
    except errors.TaskCancelledError:
        with core.lock:
            core.tm.stop_waiting(refs, waiter)
        raise
    if not ok:
        with core.lock:
            core.tm.stop_waiting(refs, waiter)
        raise errors.GetTimeoutError(f"get timed out: {waiter.needed} of {len(refs)} objects were "
                                     f"not ready after the timeout")


def wait(core, refs: list, num_returns: int, timeout: float | None,
         fetch_local: bool = False) -> tuple[list, list]:
    deadline = None if timeout is None else time.monotonic() + timeout

    def waiter_for(missing: int, ready: int):
        return Waiter(num_returns - ready) if num_returns - ready > 0 else None

    with core.lock:
        core._apply_ref_ops()
        waiter, _ = core.tm.wait_for_values(refs, waiter_for)
        if waiter is not None and core.executor is not None:
            waiter.must_block = _must_block(core, refs)
        core.apply()
    if waiter is not None:
        try:
            _block_on(core, waiter, deadline, refs)
        except errors.GetTimeoutError:
            pass
    with core.lock:
        table = core.tm.refs.refs
        ready, not_ready = [], []
        for r in refs:
            ref = table.get(r.id)
            (ready if ref is not None and ref.value is not None and len(ready) < num_returns
             else not_ready).append(r)
        if waiter is not None:
            core.tm.stop_waiting(refs, waiter)
        remote = [(r, v) for r, v in ((r, table[r.id].value) for r in ready)
                  if v.kind == SHM and v.daemon != core.daemon_address] if fetch_local else None
    if remote:
        late = _fetch_all(core, remote, deadline)
        if late:  # not local in time: not ready (as Ray counts them with fetch_local=True)
            not_ready = [r for r in refs if r in late or r in not_ready]
            ready = [r for r in ready if r not in late]
    return ready, not_ready


def _fetch_all(core, remote: list, deadline) -> set:
    """Pulls the shared-memory copies of `remote` [(ref, value)] into our node's store without
    reading them (wait's `fetch_local`); returns the refs not here by `deadline`. Each pull
    goes on after the deadline and its pin is recorded whenever it lands, kept briefly (a `get`
    right after maps it with no round trip), then released: none leaks. A lost copy counts as
    fetched (`get` rebuilds it or raises, as for any lost object)."""
    pending = {}
    done = threading.Event()

    def landed(r, ok, placement):  # I/O thread, core lock held
        if ok and placement is not None:
            if r.owner is not None:
                _report_copy(core, r.id, r.owner, lock_held=True)
            _keep_pin(core, r.id, _placement(placement), views=0)
        pending.pop(r, None)
        if not pending:
            done.set()

    for r, value in remote:
        if core.pins.acquire(r.id) is not None:  # pinned here already
            core.pins.view_released(r.id)
            continue
        pending[r] = value
    if not pending:
        return set()
    for r, value in list(pending.items()):
        core.call_async(core.daemon_address, P.OBJ_GET, r.id, core.worker_id, value.daemon,
                        callback=lambda ok, placement, r=r: landed(r, ok, placement))
    done.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
    with core.lock:  # the callbacks change it under the lock
        return set(pending)


def dynamic_end(core, task_id: bytes, count: int, oid: bytes) -> None:
    """A `num_returns="dynamic"` task yielded `count` items (lock held): its ref `oid` gets a
    `DynamicObjectRefGenerator` of their refs as its value, which then holds them (the refs
    made here take over the stream's counts, and go when this returns)."""
    from ..generator import DynamicObjectRefGenerator

    refs = [core.new_ref(ids.return_id(task_id, i)) for i in range(1, count + 1)]
    core.tm.release_stream(task_id, count)
    frames, contains = serialization.serialize(DynamicObjectRefGenerator(refs))
    core.tm.store(oid, inline_value(frames, serialization.frames_size(frames)), contains, None)


def on_ready(core, ref, callback) -> None:
    """Runs `callback(True)` (on some thread) once `ref` has a value."""
    with core.lock:
        core._apply_ref_ops()
        waiter, _ = core.tm.wait_for_values([ref], lambda missing, ready: Waiter(1, callback))
        core.apply()
    if waiter is None:
        callback(True)


REREAD_S = 0.5  # a failed read with no node death to explain it is tried again this often


def _get_rebuilt(core, r, lost_value, deadline):
    """The shared-memory copy of `r` is gone: wait for its owner to rebuild it, then read it.

    An owner rebuilds from lineage (or pins a surviving copy) once it knows the copy's node
    died; a borrower asks the owner again (the owner answers when the object is rebuilt).
    While no death explains the failed read, the read is tried again every `REREAD_S`: a
    copy that could not be fetched for a passing reason (a pull that stalled or found our
    store full on a loaded machine) is read once it can be, instead of reported lost."""
    limit = time.monotonic() + float(core.config.get("node_death_timeout", DEFAULT_DEAD_AFTER)) + 5.0
    reread_at = time.monotonic() + REREAD_S
    lost_at = lost_value.daemon
    while True:
        with core.lock:
            current = core.tm.lost_on_read(r.id, lost_at)
            core.apply()
        if current is None or current.kind != SHM or current.daemon != lost_at:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            return get(core, [r], remaining)[0]
        if time.monotonic() >= reread_at:
            try:
                return materialize(core, r.id, current, deadline, r.owner)
            except errors.ObjectLostError as exc:
                if isinstance(exc, errors.OwnerDiedError):
                    raise
            reread_at = time.monotonic() + REREAD_S
        if time.monotonic() > limit:
            raise errors.ObjectLostError(f"object {r.id.hex()} is lost: its copy on {lost_at} "
                                         f"cannot be read and no node failure explains it")
        core._node_death.wait(0.05)
        core._node_death.clear()


# ---- the centralized-metadata baseline (benchmarks only) ----------------------------------------
def task_meta_submit(core, entry) -> None:
    """The spec and argument counts go to the head before the push."""
    arg_ids = [oid for oid, _owner in entry.argument_refs()]
    spec = pack([entry.task_id, entry.fn_id, entry.name, entry.positions, *entry.arg_frames])
    core.call(core.head_address, P.TASK_META_SUBMIT, entry.task_id, spec, arg_ids)


def task_meta_done(core, entry) -> None:
    arg_ids = [oid for oid, _owner in entry.argument_refs()]
    core.transport.send(core.head_address, [pack([P.TASK_META_DONE, entry.task_id, arg_ids])])


def _placement(result: list):
    from ..store.object_store import Placement

    return Placement(*result)


def _as_raisable(exc) -> BaseException:
    if isinstance(exc, errors.TaskError):
        return exc.as_instanceof_cause()
    if isinstance(exc, BaseException):
        return exc
    return errors.EngineError(repr(exc))
