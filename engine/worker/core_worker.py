"""The core worker: every driver and worker process runs one. Owner, borrower, submitter.

Owns the process's transport and I/O thread, its ownership table (ReferenceCounter with
values), the tasks it submitted (TaskEntry) and their leases (Submitter), its view of
actors it calls, and `get`/`put`/`wait`. Tasks are pushed straight to leased workers; the
head is never contacted on the task path (§3).

Threading: user threads (the driver's, or a worker's executor) call `submit_task`, `put`,
`get`, `wait`; the I/O thread receives replies and requests. Both mutate state only under
`self.lock`. `ObjectRef.__del__` and shared-memory view finalizers never take it: they
append to the lock-free `ref_ops` deque, drained under the lock by whoever comes next.
Sends go through the transport, whose own lock keeps per-peer order.

Failures: every wait has a deadline or is tied to a death notice; a worker death retries
its tasks (`max_retries`) or stores `WorkerCrashedError`; errors are stored as values.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import threading
import time

from .. import errors
from ..object_ref import ObjectRef
from ..ownership.reference_counter import ReferenceCounter, Release
from ..ownership.submitter import Submitter
from ..ownership.task_manager import (
    ACTOR_CREATION,
    NORMAL,
    PUSHED,
    QUEUED,
    WAITING_DEPS,
    TaskEntry,
    error_value,
    inline_value,
    shm_value,
)
from ..rpc import protocol as P
from ..rpc.transport import Transport, pack, unpack
from ..store.arena_client import ArenaClient
from . import serialization
from .actor_state import ActorState
from .recovery import RecoveryMixin

log = logging.getLogger("ownrun.worker")

DEFAULT_CONFIG = {
    "inline_threshold": 100 * 1024,
    "max_in_flight_per_worker": 8,
    "lease_idle_timeout": 1.0,
    "rpc_timeout": 30.0,
}


class _Call:
    __slots__ = ("event", "ok", "result", "callback")

    def __init__(self, callback=None):
        self.event = None if callback else threading.Event()
        self.callback = callback
        self.ok = None
        self.result = None


class Waiter:
    """Signals a `get`/`wait` caller once `needed` of its objects have values."""

    __slots__ = ("needed", "event", "callback")

    def __init__(self, needed: int, callback=None):
        self.needed = needed
        self.event = threading.Event() if callback is None else None
        self.callback = callback

    def ready_one(self) -> None:
        self.needed -= 1
        if self.needed == 0:
            if self.callback is not None:
                self.callback(True)
            else:
                self.event.set()


class CoreWorker(RecoveryMixin):
    def __init__(self, mode: str, daemon_address: str, worker_id: bytes, config: dict | None = None,
                 node_info: dict | None = None):
        self.mode = mode  # "driver" or "worker"
        self.config = dict(DEFAULT_CONFIG, **(config or {}))
        self.worker_id = worker_id
        self.transport = Transport()
        self.address = self.transport.address
        self.daemon_address = daemon_address
        self.lock = threading.Lock()
        self.ref_ops: collections.deque = collections.deque()
        self.refs = ReferenceCounter(self.address)
        self.tasks: dict[bytes, TaskEntry] = {}
        self.actors: dict[bytes, ActorState] = {}
        self.submitter = Submitter(self._push, self._request_lease, self._return_lease,
                                   self._cancel_lease_request,
                                   max_in_flight=self.config["max_in_flight_per_worker"],
                                   depth=self._pipeline_depth)
        self.fn_runtime: dict[str, float] = {}  # function id -> moving average of run time (s)
        self.arena = ArenaClient()
        self._calls: dict[int, _Call] = {}
        self._call_ids = itertools.count(1)
        self._id_prefix = os.urandom(8)
        self._counter = itertools.count(1)
        self._fn_sent: dict[str, set] = {}  # worker address -> fn ids it has
        self.inline_threshold = self.config["inline_threshold"]
        self.centralized = self.config.get("metadata", "ownership") == "centralized"
        self.executor = None  # set in worker processes
        self.stopping = False
        self.node_info = node_info or {}
        self.node_id = self.node_info.get("node_id")
        self.counters = collections.Counter()
        self._actor_lease_requests: dict[int, ActorState] = {}
        self.actor_by_creation: dict[bytes, ActorState] = {}  # unnamed actors we created
        self._lease_daemons: dict[int, str] = {}  # outstanding lease request -> daemon asked
        self._recall_until = 0.0
        self._lease_request_ids = itertools.count(1_000_000_000)
        self._handlers = {
            P.REPLY: self._on_reply,
            P.TASK_REPLY: self._on_task_reply,
            P.GET_VALUE: self._on_get_value,
            P.VALUE_REPLY: self._on_value_reply,
            P.REF_REMOVED: self._on_ref_removed,
            P.LEASE_GRANTED: self._on_lease_granted,
            P.WORKER_DIED: self._on_worker_died,
            P.RECALL_LEASES: self._on_recall_leases,
            P.LOG_LINES: self._on_log_lines,
            P.NODE_DIED: self._on_node_died,
            P.ACTOR_STATE: self._on_actor_state,
        }
        self.dead_daemons: set[str] = set()
        self.dead_processes: set[str] = set()  # core workers known dead (owners of borrowed refs)
        self._node_death = threading.Event()
        self._waiting_for_node_death: list[TaskEntry] = []
        self._io_thread = threading.Thread(target=self._io_loop, name="ownrun-io", daemon=True)
        self._io_thread.start()

    # ---- set-up ---------------------------------------------------------------------------
    def register_driver(self) -> None:
        self.node_info = self.call(self.daemon_address, P.REGISTER_CLIENT, self.worker_id, os.getpid(), "driver")
        self.node_id = self.node_info["node_id"]

    @property
    def head_address(self) -> str:
        return self.node_info["head_address"]

    def add_handler(self, kind: int, handler) -> None:
        self._handlers[kind] = handler

    # ---- request/reply to daemons and the head ----------------------------------------------
    def call(self, address: str, kind: int, *fields, timeout: float | None = None):
        """Sends a request and waits for its REPLY. Not for the I/O thread."""
        call_id = next(self._call_ids)
        slot = _Call()
        self._calls[call_id] = slot
        self.transport.send(address, [pack([kind, call_id, self.address, *fields])])
        if not slot.event.wait(self.config["rpc_timeout"] if timeout is None else timeout):
            self._calls.pop(call_id, None)
            raise errors.NodeUnreachableError(f"no answer from {address} to request type {kind} "
                                              f"within {timeout or self.config['rpc_timeout']:.0f}s")
        if not slot.ok:
            raise _remote_error(slot.result)
        return slot.result

    def call_async(self, address: str, kind: int, *fields, callback) -> None:
        """Sends a request; `callback(ok, result)` runs on the I/O thread with the lock held."""
        call_id = next(self._call_ids)
        self._calls[call_id] = _Call(callback)
        self.transport.send(address, [pack([kind, call_id, self.address, *fields])])

    def _on_reply(self, h, frames) -> None:
        slot = self._calls.pop(h[1], None)
        if slot is None:
            return
        slot.ok, slot.result = h[2], h[3]
        if slot.callback is not None:
            slot.callback(h[2], h[3])
        else:
            slot.event.set()

    # ---- the I/O thread ---------------------------------------------------------------------
    def _io_loop(self) -> None:
        handlers = self._handlers
        next_housekeeping = time.monotonic() + 0.1
        while not self.stopping:
            try:
                messages, _ = self.transport.poll(100)
            except Exception:  # noqa: BLE001 - transport closed during shutdown
                if self.stopping:
                    return
                raise
            if messages:
                with self.lock:
                    for frames in messages:
                        try:
                            header = unpack(frames[0])
                            handler = handlers.get(header[0])
                            if handler is not None:
                                handler(header, frames)
                        except Exception:  # noqa: BLE001 - keep serving other messages
                            log.exception("failed to handle a message")
            if self.ref_ops or time.monotonic() >= next_housekeeping:
                with self.lock:
                    self._apply_ref_ops()
                    now = time.monotonic()
                    if now >= next_housekeeping:
                        next_housekeeping = now + 0.1
                        if self.submitter.recalled and now > self._recall_until:
                            self.submitter.recalled = False  # the daemon stopped asking
                        self.submitter.return_idle(now, self.config["lease_idle_timeout"])

    # ---- reference counting -------------------------------------------------------------------
    def _apply_ref_ops(self) -> None:
        """Applies queued count changes. Lock held."""
        ops = self.ref_ops
        if not ops:
            return
        out = Release()
        refs = self.refs
        releases = []
        while ops:
            oid, owner, delta = ops.popleft()
            if delta == 1:
                refs.add_local(oid, owner)
            elif delta == -1:
                refs.remove_local(oid, out)
            else:  # a shared-memory view was released
                releases.append(oid)
        for oid in releases:
            self.transport.send(self.daemon_address, [pack([P.OBJ_RELEASE, self.worker_id, oid])])
        if out:
            self._carry_out(out)

    def _carry_out(self, out: Release) -> None:
        """Frees values of owned objects out of scope and sends release notices. Lock held."""
        free_by_node: dict[str, list] = {}
        for ref in out.freed_owned:
            actor = self.actor_by_creation.pop(ref.oid, None) if self.actor_by_creation else None
            if actor is not None:
                actor.handles_out_of_scope(self)  # killed once our calls to it have finished
            value = ref.value
            if value is not None and value[0] == P.VALUE_SHM:
                free_by_node.setdefault(value[1], []).append(ref.oid)
            ref.value = None
        for daemon, oids in free_by_node.items():
            self.transport.send(daemon, [pack([P.OBJ_FREE, oids])])
        for parent, items in out.notices.items():
            self.transport.send(parent, [pack([P.REF_REMOVED, self.address, items])])

    def _on_ref_removed(self, h, frames) -> None:
        out = Release()
        borrower = h[1]
        for oid, count in h[2]:
            self.refs.borrower_released(borrower, oid, count, out)
        if out:
            self._carry_out(out)

    def new_ref(self, oid: bytes) -> ObjectRef:
        """An ObjectRef to an object we own whose record already counts it. Lock held."""
        return ObjectRef(oid, self.address, self.ref_ops)

    def next_id(self) -> bytes:
        return self._id_prefix + next(self._counter).to_bytes(8, "little")

    # ---- values --------------------------------------------------------------------------------
    def _store_value(self, oid: bytes, value: tuple, contains: list | None, registered_by: str | None) -> None:
        """A value arrived for `oid`. Lock held."""
        ref = self.refs.refs.get(oid)
        if ref is None:
            # Nobody here wants it any more: free it, and release what it contained.
            if value[0] == P.VALUE_SHM and registered_by is None:
                self.transport.send(value[1], [pack([P.OBJ_FREE, [oid]])])
            if contains and registered_by is not None:
                items = [[i, 1] for i, owner in contains if owner != self.address]
                if items:
                    self.transport.send(registered_by, [pack([P.REF_REMOVED, self.address, items])])
            return
        if ref.value is not None:
            return
        ref.value = value
        ref.size = value[3]
        if contains:
            self.refs.set_contains(ref, contains, registered_by)
        waiters = ref.waiters
        if waiters:
            ref.waiters = None
            for waiter in waiters:
                waiter.ready_one()
            out = Release()
            self.refs.check(oid, out)
            if out:
                self._carry_out(out)

    def owns_anything(self) -> bool:
        """Tasks in flight, owned values not yet freed, or borrowed refs that others borrow
        through this process (a link in the borrower tree): it must not be reaped. Lock held."""
        if self.tasks:
            return True
        for ref in self.refs.refs.values():
            if ref.owned and not ref.freed:
                return True
            if not ref.owned and any(count > 0 for count in ref.borrowers.values()):
                return True
        return False

    def put(self, value) -> ObjectRef:
        frames, contains = serialization.serialize(value)
        size = serialization.frames_size(frames)
        oid = self.next_id() + b"\0\0\0\0"
        if self.ref_ops:  # free what was dropped first, so its memory can be reused
            with self.lock:
                self._apply_ref_ops()
        if size < self.inline_threshold:
            stored = inline_value([bytes(f) if not isinstance(f, bytes) else f for f in frames], size)
        else:
            self._write_shm(oid, frames, self.address)
            stored = shm_value(self.node_id, size, self.daemon_address)
        with self.lock:
            self._apply_ref_ops()
            ref = self.refs.add_owned(oid)
            ref.value, ref.size = stored, size
            if contains:
                self.refs.set_contains(ref, contains, None)
            return self.new_ref(oid)

    def _write_shm(self, oid: bytes, frames: list, owner_address: str) -> int:
        total, chunks = serialization.shm_layout(frames)
        result = self.call(self.daemon_address, P.OBJ_CREATE, oid, total, owner_address, self.worker_id)
        placement = _placement(result)
        if not placement.exists:  # a re-executed task may recreate a sealed object
            self.arena.write(placement, chunks)
        self.transport.send(self.daemon_address, [pack([P.OBJ_SEAL, self.worker_id, oid])])
        return total

    def _materialize(self, oid: bytes, value: tuple, deadline: float | None = None):
        kind = value[0]
        if kind == P.VALUE_INLINE:
            return serialization.deserialize(value[1], [])
        if kind == P.VALUE_ERROR:
            raise _as_raisable(serialization.deserialize(value[1]))
        if deadline is None:
            placement = self.call(self.daemon_address, P.OBJ_GET, oid, self.worker_id, value[1])
        else:  # a fetch from another node must not outlast get()'s timeout
            try:
                placement = self.call(self.daemon_address, P.OBJ_GET, oid, self.worker_id, value[1],
                                      timeout=max(0.001, deadline - time.monotonic()))
            except errors.NodeUnreachableError:
                raise errors.GetTimeoutError(f"get timed out fetching object {oid.hex()} from node "
                                             f"{value[2]}") from None
        if placement is None:
            raise errors.ObjectLostError(f"object {oid.hex()} is no longer in the object store of node "
                                         f"{value[2]} (it was freed or its node failed)")
        ops, wake = self.ref_ops, self.transport.wake

        def release():
            ops.append((oid, None, 0))
            wake()

        view = self.arena.view_with_release(_placement(placement), release)
        return serialization.deserialize(serialization.frames_from_shm(view), [])

    # ---- get / wait ------------------------------------------------------------------------------
    def _register_waiter(self, refs: list, needed_of_missing) -> tuple[Waiter | None, list]:
        """Lock held. Returns (waiter or None, values-or-None per ref)."""
        values = []
        missing = []
        table = self.refs.refs
        for r in refs:
            entry = table.get(r.id)
            if entry is None:
                entry = self.refs.get_or_add_borrowed(r.id, r.owner)
            value = entry.value
            values.append(value)
            if value is None:
                missing.append(entry)
        if not missing:
            return None, values
        needed = needed_of_missing(len(missing), len(refs) - len(missing))
        if needed <= 0:
            return None, values
        waiter = Waiter(needed)
        for entry in missing:
            if entry.waiters is None:
                entry.waiters = [waiter]
            else:
                entry.waiters.append(waiter)
            if not entry.owned:
                self._request_value(entry)
        return waiter, values

    def _request_value(self, entry) -> None:
        """Asks a borrowed object's owner for its value (once). Lock held."""
        if entry.size == -1:
            return
        entry.size = -1  # marks "requested"
        self.transport.send(entry.owner, [pack([P.GET_VALUE, self.address, entry.oid])])

    def get(self, refs: list, timeout: float | None):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            self._apply_ref_ops()
            waiter, values = self._register_waiter(refs, lambda missing, ready: missing)
        if waiter is not None:
            self._block_on(waiter, deadline, refs)
            with self.lock:
                values = [self.refs.refs[r.id].value if r.id in self.refs.refs else None for r in refs]
        out = []
        for r, value in zip(refs, values, strict=True):
            if value is None:
                raise errors.ObjectLostError(f"object {r.id.hex()} has no value")
            try:
                out.append(self._materialize(r.id, value, deadline))
            except errors.ObjectLostError as exc:
                if value[0] != P.VALUE_SHM or isinstance(exc, errors.OwnerDiedError):
                    raise
                if r.owner in self.dead_processes:
                    raise errors.OwnerDiedError(f"object {r.id.hex()} is lost: its owner {r.owner} died") from None
                out.append(self._get_rebuilt(r, value, deadline))
        return out

    def _block_on(self, waiter: Waiter, deadline, refs) -> None:
        blocked = self.mode == "worker" and self.executor is not None and self.executor.holds_lease()
        if blocked:
            self.transport.send(self.daemon_address, [pack([P.WORKER_BLOCKED, self.worker_id])])
        try:
            ok = waiter.event.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        finally:
            if blocked:
                self.transport.send(self.daemon_address, [pack([P.WORKER_UNBLOCKED, self.worker_id])])
        if not ok:
            with self.lock:
                for r in refs:
                    entry = self.refs.refs.get(r.id)
                    if entry is not None and entry.waiters and waiter in entry.waiters:
                        entry.waiters.remove(waiter)
            raise errors.GetTimeoutError(f"get timed out: {waiter.needed} of {len(refs)} objects were "
                                         f"not ready after the timeout")

    def wait(self, refs: list, num_returns: int, timeout: float | None) -> tuple[list, list]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            self._apply_ref_ops()
            waiter, _ = self._register_waiter(refs, lambda missing, ready: num_returns - ready)
        if waiter is not None:
            try:
                self._block_on(waiter, deadline, refs)
            except errors.GetTimeoutError:
                pass
        with self.lock:
            table = self.refs.refs
            ready, not_ready = [], []
            for r in refs:
                entry = table.get(r.id)
                (ready if entry is not None and entry.value is not None and len(ready) < num_returns
                 else not_ready).append(r)
            for r in refs:
                entry = table.get(r.id)
                if entry is not None and entry.waiters and waiter in entry.waiters:
                    entry.waiters.remove(waiter)
        return ready, not_ready

    def on_ready(self, ref: ObjectRef, callback) -> None:
        """Runs `callback(True)` (on some thread) once `ref` has a value."""
        with self.lock:
            self._apply_ref_ops()
            entry = self.refs.refs.get(ref.id) or self.refs.get_or_add_borrowed(ref.id, ref.owner)
            if entry.value is not None:
                ready = True
            else:
                ready = False
                waiter = Waiter(1, callback)
                entry.waiters = (entry.waiters or []) + [waiter]
                if not entry.owned:
                    self._request_value(entry)
        if ready:
            callback(True)

    # ---- serving values to borrowers ---------------------------------------------------------------
    def _on_get_value(self, h, frames) -> None:
        requester, oid = h[1], h[2]
        entry = self.refs.refs.get(oid)
        if entry is None:
            exc = errors.ObjectFreedError(f"object {oid.hex()} was already freed by its owner {self.address}")
            self._send_value(requester, oid, error_value(serialization.serialize(exc)[0]), None)
            return
        value = entry.value
        if value is not None and value[0] == P.VALUE_SHM and value[1] in self.dead_daemons and entry.owned:
            entry.value = None  # lost with its node: rebuild it, then answer
            self._recover(entry, f"its node's daemon {value[1]} died")
        if entry.value is not None:
            self._send_value(requester, oid, entry.value, entry.contains)
            return
        entry.waiters = (entry.waiters or []) + [_BorrowerWaiter(self, requester, oid)]

    def _send_value(self, requester: str, oid: bytes, value: tuple, contains: list | None) -> None:
        if contains:
            self.refs.register_borrower(contains, requester)
        kind = value[0]
        if kind == P.VALUE_SHM:
            meta = [kind, value[2], value[3], contains, value[1]]
            payload = []
        else:
            meta = [kind, len(value[1]), contains]
            payload = value[1]
        self.transport.send(requester, [pack([P.VALUE_REPLY, oid, meta, self.address]), *payload])

    def _on_value_reply(self, h, frames) -> None:
        oid, meta, sender = h[1], h[2], h[3]
        value, contains = _value_from_meta(meta, frames, 1)
        self._store_value(oid, value, contains, sender)

    # ---- task submission ---------------------------------------------------------------------------
    def submit_task(self, entry: TaskEntry) -> list[ObjectRef]:
        """Registers and queues a task; returns refs to its results."""
        if self.centralized:
            self._write_task_meta(entry)
        with self.lock:
            self._apply_ref_ops()
            refs = self.refs
            out = []
            for rid in entry.return_ids:
                refs.add_owned(rid)
                out.append(ObjectRef(rid, self.address, self.ref_ops))
            submitted = entry.deps + entry.nested if entry.nested else entry.deps
            entry.submitted_refs = submitted
            if submitted:
                refs.add_submitted(submitted)
            self.tasks[entry.task_id] = entry
            if entry.actor is not None:  # takes its place in the caller's order now
                entry.actor.submitted(self, entry)
            self._resolve(entry)
            return out

    def _resolve(self, entry: TaskEntry) -> None:
        """Waits for top-level ref arguments, then queues the task. Lock held."""
        table = self.refs.refs
        unresolved = 0
        for oid, _owner in entry.deps:
            dep = table[oid]
            if dep.value is None:
                unresolved += 1
                if dep.waiters is None:
                    dep.waiters = [_DepWaiter(self, entry)]
                else:
                    dep.waiters.append(_DepWaiter(self, entry))
                if not dep.owned:
                    self._request_value(dep)
        entry.unresolved = unresolved
        if unresolved == 0:
            self._queue(entry)

    def _deps_ready(self, entry: TaskEntry) -> None:
        entry.unresolved -= 1
        if entry.unresolved == 0 and entry.task_id in self.tasks and not entry.cancelled:
            self._queue(entry)

    def _queue(self, entry: TaskEntry) -> None:
        """All arguments have values: inline them into the spec and hand over. Lock held."""
        table = self.refs.refs
        if entry.deps:
            meta, dep_frames = [], []
            for oid, _owner in entry.deps:
                dep = table[oid]
                value = dep.value
                kind = value[0]
                if kind == P.VALUE_ERROR:
                    self._fail_task(entry, value)
                    return
                if kind == P.VALUE_INLINE:
                    meta.append([kind, len(value[1]), dep.contains, oid])
                    dep_frames.extend(value[1])
                else:
                    meta.append([kind, value[2], value[3], dep.contains, oid, value[1]])
                if dep.contains:
                    self.refs.add_submitted(dep.contains)
                    entry.submitted_refs = entry.submitted_refs + dep.contains
            entry.dep_meta, entry.dep_frames = meta, dep_frames
        entry.state = QUEUED
        if entry.kind == NORMAL:
            daemon = self._locality(entry)
            if daemon is None:
                self.submitter.enqueue(entry, entry.shape, entry.resources)
            else:
                self.submitter.enqueue(entry, (entry.shape, daemon), entry.resources, daemon)
        else:
            entry.actor.enqueue(self, entry)

    def _locality(self, entry: TaskEntry) -> str | None:
        """The daemon of the node holding most of the task's argument bytes, if not ours."""
        if not entry.dep_meta:
            return None
        by_daemon: dict[str, int] = {}
        for meta in entry.dep_meta:
            if meta[0] == P.VALUE_SHM:
                by_daemon[meta[5]] = by_daemon.get(meta[5], 0) + meta[2]
        if not by_daemon:
            return None
        best = max(by_daemon, key=by_daemon.get)
        if best == self.daemon_address or best in self.dead_daemons:
            return None
        return best

    def _push(self, entry: TaskEntry, lease) -> None:
        """Sends a task to a leased worker (lock held)."""
        entry.state = PUSHED
        entry.worker_id = lease.worker_id
        self.push_to(entry, lease.address)

    def push_to(self, entry: TaskEntry, address: str) -> None:
        sent = self._fn_sent.get(address)
        if sent is None:
            sent = self._fn_sent[address] = set()
        first = entry.fn_id not in sent
        if first:
            sent.add(entry.fn_id)
        frames = [pack(entry.header(self.address, first)), *entry.arg_frames]
        if entry.dep_frames:
            frames.extend(entry.dep_frames)
        self.transport.send(address, frames)

    def _pipeline_depth(self, entry: TaskEntry) -> int:
        runtime = self.fn_runtime.get(entry.fn_id)
        if runtime is None or runtime > 0.001:
            return 1
        return self.submitter.max_in_flight

    def _request_lease(self, request_id: int, shape: tuple, resources: dict, daemon: str | None = None,
                       hops: int = 0, for_actor: bool = False) -> None:
        daemon = daemon or self.daemon_address
        self._lease_daemons[request_id] = daemon
        self.transport.send(daemon, [pack([P.LEASE_REQUEST, self.address, self.worker_id,
                                           request_id, resources, for_actor, hops])])

    def _return_lease(self, worker_id: bytes, daemon: str) -> None:
        self.transport.send(daemon, [pack([P.LEASE_RETURN, worker_id, True])])

    def _cancel_lease_request(self, request_id: int) -> None:
        daemon = self._lease_daemons.pop(request_id, self.daemon_address)
        self.transport.send(daemon, [pack([P.LEASE_CANCEL, self.address, request_id])])

    def _on_lease_granted(self, h, frames) -> None:
        request_id, worker_id, address, node_id, daemon, spill_to = h[1], h[2], h[3], h[4], h[5], h[6]
        if spill_to is not None:  # that node is busy or lacks the resources: ask the one it names
            actor = self._actor_lease_requests.get(request_id)
            resources = actor.resources if actor is not None else \
                self.submitter.queues[self.submitter.request_shapes[request_id]].resources \
                if request_id in self.submitter.request_shapes else None
            if resources is not None:
                self._request_lease(request_id, None, resources, spill_to, hops=1, for_actor=actor is not None)
            return
        self._lease_daemons.pop(request_id, None)
        actor = self._actor_lease_requests.pop(request_id, None)
        if worker_id is None:  # infeasible
            exc = errors.EngineError(address)
            if actor is not None:
                actor.lease_failed(self, str(exc))
                return
            shape = self.submitter.request_shapes.pop(request_id, None)
            queue = self.submitter.queues.get(shape)
            if queue is not None:
                queue.lease_requests.discard(request_id)
                while queue.ready:
                    self._fail_task(queue.ready.popleft(), error_value(serialization.serialize(exc)[0]))
            return
        if actor is not None:
            actor.lease_granted(self, worker_id, address, node_id, daemon)
            return
        self.submitter.lease_granted(request_id, worker_id, address, node_id, daemon, time.monotonic())

    def request_actor_lease(self, actor: ActorState, resources: dict) -> None:
        request_id = next(self._lease_request_ids)
        self._actor_lease_requests[request_id] = actor
        actor.resources = resources
        self._request_lease(request_id, None, resources, for_actor=True)

    def _on_recall_leases(self, h, frames) -> None:
        """Others wait for workers: give back idle leases now, and busy ones once idle."""
        self.submitter.recalled = True
        self._recall_until = time.monotonic() + 0.5
        self.submitter.return_idle(time.monotonic(), 0.0)

    # ---- task replies -------------------------------------------------------------------------------
    def _on_task_reply(self, h, frames) -> None:
        _, worker_addr, task_id, returns, borrowed, worker_id, runtime = h
        entry = self.tasks.pop(task_id, None)
        if entry is None:
            return
        if runtime is not None:
            previous = self.fn_runtime.get(entry.fn_id)
            self.fn_runtime[entry.fn_id] = runtime if previous is None else 0.8 * previous + 0.2 * runtime
        if entry.kind == NORMAL:
            self.submitter.task_finished(worker_id, task_id, time.monotonic())
        else:
            entry.actor.task_finished(self, entry)
        if borrowed:
            self.refs.add_borrowers_from_reply(borrowed, worker_addr)
        if (entry.kind == NORMAL and entry.retry_exceptions and entry.retries_left != 0
                and returns and returns[0][0] == P.VALUE_ERROR):
            if entry.retries_left > 0:
                entry.retries_left -= 1
            self.counters["task_retries"] += 1
            self.tasks[task_id] = entry
            entry.state = QUEUED
            self.submitter.enqueue(entry, entry.shape, entry.resources)
            return
        if (returns and returns[0][0] == P.VALUE_ERROR and len(returns[0]) > 3
                and returns[0][3] == "arg_lost" and entry.kind == NORMAL):
            self._rerun_after_lost_argument(entry)
            return
        pos = 1
        table = self.refs.refs
        for rid, meta in zip(entry.return_ids, returns, strict=True):
            value, contains = _value_from_meta(meta, frames, pos)
            if value[0] != P.VALUE_SHM:
                pos += meta[1]
            elif entry.kind == NORMAL:
                ref = table.get(rid)
                if ref is not None:
                    self.refs.keep_lineage(ref, entry)
            self._store_value(rid, value, contains, worker_addr if contains else None)
        if entry.kind == ACTOR_CREATION and entry.actor.restarts_left != 0 and returns[0][0] != P.VALUE_ERROR:
            return  # a restart re-runs the constructor: keep its arguments alive until the actor dies
        self._task_done(entry)

    def _write_task_meta(self, entry: TaskEntry) -> None:
        """Centralized baseline: the spec and argument counts go to the head before the push."""
        arg_ids = [oid for oid, _owner in entry.deps] + [oid for oid, _owner in entry.nested or ()]
        spec = pack([entry.task_id, entry.fn_id, entry.name, entry.positions, *entry.arg_frames])
        self.call(self.head_address, P.TASK_META_SUBMIT, entry.task_id, spec, arg_ids)

    def _task_done(self, entry: TaskEntry) -> None:
        if self.centralized:
            arg_ids = [oid for oid, _owner in entry.deps] + [oid for oid, _owner in entry.nested or ()]
            self.transport.send(self.head_address, [pack([P.TASK_META_DONE, entry.task_id, arg_ids])])
        if entry.submitted_refs:
            out = Release()
            self.refs.remove_submitted(entry.submitted_refs, out)
            entry.submitted_refs = None
            if out:
                self._carry_out(out)

    def _fail_task(self, entry: TaskEntry, value: tuple) -> None:
        """Stores an error under every return id of the task. Lock held."""
        self.tasks.pop(entry.task_id, None)
        for rid in entry.return_ids:
            self._store_value(rid, value, None, None)
        self._task_done(entry)
        if entry.actor is not None:
            entry.actor.task_failed(self, entry, value)

    def _on_worker_died(self, h, frames) -> None:
        _, worker_id, address, reason = h
        self.dead_processes.add(address)
        self._fn_sent.pop(address, None)
        self.transport.disconnect(address)
        out = Release()
        self.refs.process_died(address, out)
        if out:
            self._carry_out(out)
        self._fail_objects_of_dead_owner(address, reason)
        for entry in self.submitter.worker_died(worker_id):
            self._retry_or_fail(entry, reason)
        for actor in list(self.actors.values()):
            if actor.worker_id == worker_id:
                actor.worker_died(self, reason)

    def _on_actor_state(self, h, frames) -> None:
        actor = self.actors.get(h[1])
        if actor is not None:
            actor.on_head_update(self, h[2])

    def _retry_or_fail(self, entry: TaskEntry, reason: str) -> None:
        if entry.cancelled:
            exc = errors.TaskCancelledError(f"task {entry.name} was cancelled")
        elif entry.retries_left != 0:
            if entry.retries_left > 0:
                entry.retries_left -= 1
            self.counters["task_retries"] += 1
            self._resubmit(entry, reason)  # re-resolves arguments: some may have been lost too
            return
        else:
            exc = errors.WorkerCrashedError(f"task {entry.name} failed: {reason}, and it has no retries left")
        self._fail_task(entry, error_value(serialization.serialize(exc)[0]))

    # ---- cancel -----------------------------------------------------------------------------------------
    def cancel(self, ref: ObjectRef, force: bool) -> None:
        task_id = ref.id[:16]
        with self.lock:
            entry = self.tasks.get(task_id)
            if entry is None:
                return
            entry.cancelled = True
            exc = errors.TaskCancelledError(f"task {entry.name} was cancelled")
            if entry.state == WAITING_DEPS or self.submitter.remove_queued(task_id) is not None:
                self._fail_task(entry, error_value(serialization.serialize(exc)[0]))
                return
            lease = self.submitter.find_in_flight(task_id)
            if lease is None:
                return
            # The worker knows whether the task runs or waits behind another; with force it
            # exits only if this task is the one running.
            self.transport.send(lease.address, [pack([P.CANCEL_TASK, task_id, force])])

    # ---- output from workers ------------------------------------------------------------------------------
    def _on_log_lines(self, h, frames) -> None:
        prefix, text = h[1], h[2]
        import sys

        out = "".join(f"({prefix}) {line}\n" for line in text.splitlines())
        try:
            sys.stderr.write(out)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    # ---- shutdown ------------------------------------------------------------------------------------------
    def stop(self, unregister: bool = False) -> None:
        """Stops the I/O thread and closes sockets. A driver leaving a cluster that keeps running
        (`unregister`) first tells its daemon, which releases its leases, pins and objects."""
        if unregister:
            try:
                self.call(self.daemon_address, P.UNREGISTER_CLIENT, timeout=2)
            except errors.EngineError:
                pass  # the daemon is gone: nothing is held there any more
        self.stopping = True
        self.transport.wake()
        if threading.current_thread() is not self._io_thread:
            self._io_thread.join(timeout=5)
        self.arena.close()
        self.transport.close()

    def stats(self) -> dict:
        with self.lock:
            self._apply_ref_ops()
            return {"refs": len(self.refs.refs), "tasks": len(self.tasks),
                    "leases": self.submitter.num_leases(), "retries": self.counters["task_retries"],
                    "reconstructions": self.counters["reconstructions"]}


class _DepWaiter:
    """Tells a task waiting for an argument that the argument's value arrived."""

    __slots__ = ("worker", "entry")

    def __init__(self, worker: CoreWorker, entry: TaskEntry):
        self.worker, self.entry = worker, entry

    def ready_one(self) -> None:
        self.worker._deps_ready(self.entry)


class _BorrowerWaiter:
    """Answers a borrower's GET_VALUE once the value arrives (the borrower long-polls)."""

    __slots__ = ("worker", "requester", "oid")

    def __init__(self, worker: CoreWorker, requester: str, oid: bytes):
        self.worker, self.requester, self.oid = worker, requester, oid

    def ready_one(self) -> None:
        entry = self.worker.refs.refs.get(self.oid)
        if entry is not None:
            self.worker._send_value(self.requester, self.oid, entry.value, entry.contains)


def _value_from_meta(meta: list, frames: list, pos: int) -> tuple[tuple, list | None]:
    kind = meta[0]
    if kind == P.VALUE_SHM:
        return shm_value(meta[1], meta[2], meta[4]), meta[3]
    n = meta[1]
    payload = frames[pos:pos + n]
    if kind == P.VALUE_ERROR:
        return error_value(payload), meta[2]
    return inline_value(payload, sum(len(f) for f in payload)), meta[2]


def _placement(result: list):
    from ..store.object_store import Placement

    return Placement(*result)


def _remote_error(result) -> Exception:
    if isinstance(result, list) and len(result) == 2:
        name, message = result
        cls = getattr(errors, name, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            return cls(message)
        return errors.EngineError(f"{name}: {message}")
    return errors.EngineError(str(result))


def _as_raisable(exc) -> BaseException:
    if isinstance(exc, errors.TaskError):
        return exc.as_instanceof_cause()
    if isinstance(exc, BaseException):
        return exc
    return errors.EngineError(repr(exc))

