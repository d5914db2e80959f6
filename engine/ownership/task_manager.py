"""The owner's task lifecycle, as a state machine: events in, instructions out (§3, §5).

Owns `TaskEntry` (one record per submitted task) and everything that happens to a task this
process submitted, from `.remote()` until its results are stored:

    submit -> WAITING_DEPS --dep values arrive--> QUEUED --lease, push--> PUSHED --reply--> done
                   ^                                                          |
                   +------------- retry (worker/node died, retry_exceptions, lost argument)

and the values of the objects this process owns or borrows (via the reference counter's
records and `memory_store`), lineage for every return a downstream task may need (inline
ones included), recovery of lost objects (`recovery.RecoveryPlanner`), cancellation, and
the fate of objects whose owner died. Actor tasks are resolved here and handed to their
actor (`ACTOR_ENQUEUE`); so is a restarting actor's creation, again (`rerun_creation`, lost
arguments rebuilt first; `end_creation` once the actor is dead); the actor's own queue and
restarts are not this module's.

The core worker (the shell) feeds events — `submit`, `task_reply`, `lease_granted`,
`worker_died`, `node_died`, `cancel`, `value_reply`, ... — and then applies the
instructions appended to `self.out` (a deque, drained by the shell in order):

    (SEND, address, header, payload)   send one message
    (PUSH, entry, address)             push a task to a worker (the shell adds the function blob once)
    (WAKE, waiter, failed)             a get/wait caller may proceed (failed: the value is an error)
    (NUDGE, waiter)                    a get/wait caller's borrowed object is pending at its owner too
    (ACTOR_SUBMITTED, entry)           an actor task was submitted: it takes its place in the caller's order
    (ACTOR_ENQUEUE, entry)             an actor task's arguments are ready
    (ACTOR_TASK_DONE, entry)           an actor task replied
    (ACTOR_TASK_FAILED, entry, value)  an actor task ended here with an error, without a reply
    (ACTOR_ARG_LOST, entry)            an actor's constructor could not fetch an argument: its worker is
                                       discarded; the creation is resolved again (ACTOR_ENQUEUE follows)
    (ACTOR_LEASE, actor, grant)        a lease for an actor arrived (grant None: infeasible, see reason)
    (DYNAMIC_END, task_id, n, oid)     a num_returns="dynamic" task yielded n items: store their refs under oid
    (KILL_ACTOR, creation_oid)         the last handle of an unnamed actor went out of scope
    (META_DONE, entry)                 centralized-metadata baseline: tell the head the task is done

A streaming generator task (`num_returns="streaming"`) has no fixed return ids: each item it
yields arrives on its own (`generator_item`) as return 1, 2, ...; the stream (`streams`) holds
one count on every item until the caller's generator hands it out as an ObjectRef (or is
dropped: `release_stream`); a failure becomes the item after the last one; the end wakes the
generator. Items have no lineage (the task is not re-run to rebuild one item). A
`num_returns="dynamic"` task streams the same way but returns one ref (`ids.dynamic_id`): at
the end the shell stores under it the list of the items' refs (`DYNAMIC_END`), which then
hold them; a failure is stored under it instead.

Failures are stored as error values under the task's return ids, so `get` raises them.
`history(id)` answers "what happened to this task/object?" from a bounded transition log.
`on_event(kind, key, name, detail)` (a no-op unless the shell sets it: the timeline's
`EVENTS.owner_event`) hears of what the timeline shows: each lease request asked
("lease_asked", request id, resources) and answered ("lease_answered", request id, node or
None, error or None), each retry and each failure stored here ("retry"/"failure", task id,
name, why). It is not called per task on the success path.

Pure: no sockets, threads or clocks (the time is passed in). Not thread-safe: the core
worker calls it with its state lock held.
"""

from __future__ import annotations

import collections

from .. import errors
from ..ids import return_id
from ..rpc import protocol as P
from . import memory_store as ms
from .lease_policy import LeasePolicy
from .memory_store import SHM, BorrowerWait, Value, error_of, error_value, inline_value, shm_value
from .recovery import LOST, PIN, RESUBMIT, RecoveryPlanner, is_lost
from .reference_counter import ACTOR_TASK, PUT, STREAMED, ReferenceCounter, Release
from .submitter import Submitter

__all__ = ["TaskEntry", "TaskManager", "error_value", "inline_value", "shm_value", "Value"]

WAITING_DEPS, QUEUED, PUSHED = 0, 1, 2
STATE_NAMES = ("waiting_deps", "queued", "pushed")
NORMAL, ACTOR_CREATION, ACTOR_METHOD = 0, 1, 2

(SEND, PUSH, WAKE, ACTOR_SUBMITTED, ACTOR_ENQUEUE, ACTOR_TASK_DONE, ACTOR_TASK_FAILED, ACTOR_LEASE, KILL_ACTOR,
 META_DONE, NUDGE, ACTOR_ARG_LOST, DYNAMIC_END) = range(13)

HISTORY_ENTRIES = 4096  # transitions kept, all ids together
HISTORY_PER_ID = 32  # most recent entries `history(id)` returns
FINISHED_TASKS = 10_000  # finished tasks remembered for the state API (engine/state/), newest last
_PINNED_NODE_DIED = "NodeAffinitySchedulingStrategy(soft=False) names a node that died"
ACTOR_LEASE_IDS = 1_000_000_000  # actor lease request ids start here (normal ones below)


class Stream:
    """What a streaming generator task has yielded so far (items 1..count)."""

    __slots__ = ("count", "done", "released", "waiters", "dynamic")

    def __init__(self, dynamic: bytes | None = None):
        self.count = 0  # items stored (a failure counts as the last item)
        self.done = False  # the task ended: no more items
        self.released = False  # the caller's generator is gone: items are freed as they come
        self.waiters: list = []  # woken (WAKE) by the next item or the end
        self.dynamic = dynamic  # num_returns="dynamic": the ref whose value lists the items


def _no_event(kind: str, key, name, detail) -> None:
    pass


class TaskEntry:
    """One submitted task, from `.remote()` until its reply (or final failure)."""

    __slots__ = (
        "task_id", "name", "kind", "fn_id", "fn_blob", "arg_frames", "positions", "deps",
        "nested", "return_ids", "retries_left", "retry_exceptions", "shape", "resources",
        "actor", "state", "unresolved", "worker_id", "cancelled", "dep_meta", "dep_frames",
        "submitted_refs", "dep_refs", "extra", "spec_bytes",
    )

    def __init__(self, *, task_id: bytes, name: str, kind: int, fn_id: str, fn_blob: bytes | None,
                 arg_frames: list, positions: list, deps: list, nested: list | None,
                 return_ids: list, retries_left: int, retry_exceptions: bool, shape: tuple,
                 resources: dict, actor=None, extra: dict | None = None):
        self.task_id = task_id
        self.name = name
        self.kind = kind
        self.fn_id = fn_id
        self.fn_blob = fn_blob
        self.arg_frames = arg_frames
        self.positions = positions  # where each top-level ref dep goes: int index or kw name
        self.deps = deps  # [[oid, owner], ...] top-level ref arguments
        self.nested = nested  # [[oid, owner], ...] refs pickled inside the arguments
        self.return_ids = return_ids
        self.retries_left = retries_left  # -1: unlimited
        self.retry_exceptions = retry_exceptions
        self.shape = shape
        self.resources = resources
        self.actor = actor  # the caller's actor state, for actor tasks
        self.state = WAITING_DEPS
        self.unresolved = 0  # top-level arguments still without a value
        self.worker_id = None
        self.cancelled = False
        self.dep_meta = None  # argument values' metadata, set when queued
        self.dep_frames = None  # inline argument values' frames, set when queued
        self.submitted_refs = None  # the records of every ref counted as submitted for this task
        self.dep_refs = ()  # the records of `deps`, in order (from the first submit on; kept as lineage)
        self.extra = extra  # actor creation options sent to the worker
        # what keeping it as lineage costs (reference_counter.py): by-value argument bytes and a little
        self.spec_bytes = 200 + sum(map(len, arg_frames))

    def header(self, caller: str, send_fn_blob: bool) -> list:
        """The PUSH_TASK header: its fields in the order protocol.PUSH_* names them."""
        actor_id = self.actor.actor_id if self.actor is not None else None
        return [P.PUSH_TASK, caller, self.task_id, self.name, self.kind, self.fn_id,
                self.fn_blob if send_fn_blob else None, len(self.return_ids),
                len(self.arg_frames), self.positions, self.dep_meta, actor_id, self.extra]

    def argument_refs(self) -> list:
        """Every ref the task's arguments carry, top-level first (`deps` itself if none is
        nested: callers only read it)."""
        return self.deps + self.nested if self.nested else self.deps


class TaskManager:
    """The tasks, values and lineage of one owner process."""

    def __init__(self, address: str, daemon_address: str, worker_id: bytes, max_in_flight: int = 8):
        self.address = address
        self.daemon_address = daemon_address
        self.worker_id = worker_id
        self.out: collections.deque = collections.deque()
        self.refs = ReferenceCounter(address)
        self.tasks: dict[bytes, TaskEntry] = {}
        self.policy = LeasePolicy(max_in_flight)
        self.submitter = Submitter(self._push, self._request_lease, self._return_lease,
                                   self._cancel_lease_request, max_in_flight=max_in_flight,
                                   depth=self.policy.depth)
        self.dead_daemons: set[str] = set()
        self.dead_processes: set[str] = set()  # core workers known dead
        self.recovery = RecoveryPlanner(self.refs, self.tasks, self.dead_daemons)
        self.counters = collections.Counter()
        self.lease_daemons: dict[int, str] = {}  # outstanding lease request -> daemon asked
        self.actor_lease_requests: dict[int, object] = {}  # request id -> actor state
        self._next_actor_request = ACTOR_LEASE_IDS
        self.waiting_for_node_death: list[TaskEntry] = []  # a fetch failed; the notice is coming
        self.log: collections.deque = collections.deque(maxlen=HISTORY_ENTRIES)
        self._log = self.log.append  # (id, event, state): one tuple per transition, no call layer
        # (task_id, name, kind, "done"/"failed", worker_id) of finished tasks, for the state API
        self.finished: collections.deque = collections.deque(maxlen=FINISHED_TASKS)
        self.actor_by_creation: dict = {}  # creation return id -> actor state (unnamed actors we created)
        self.streams: dict[bytes, Stream] = {}  # streaming generator task id -> its items so far
        self.centralized = False  # the centralized-metadata baseline: tell the head when tasks end
        self.on_event = _no_event  # the timeline's hook (see the module docstring)

    # ---- the transition log ---------------------------------------------------------------
    def history(self, key: bytes) -> list[tuple]:
        """The latest (event, state) entries of a task or object id (bounded)."""
        return [(event, state) for k, event, state in self.log if k == key][-HISTORY_PER_ID:]

    # ---- reference counts -----------------------------------------------------------------
    def apply_ref_ops(self, ops: collections.deque) -> None:
        """Applies queued count changes of ObjectRefs (shared-memory views are counted by the
        shell's pin cache, not here)."""
        if not ops:
            return
        out = Release()
        refs = self.refs
        while ops:
            oid, owner, delta = ops.popleft()
            if delta == 1:
                refs.add_local(oid, owner)
            else:
                refs.remove_local(oid, out)
        if out:
            self.release(out)

    def release(self, out: Release) -> None:
        """Frees values of owned objects out of scope and sends release notices."""
        free_by_daemon: dict[str, list] = {}
        creations = self.actor_by_creation
        for ref in out.freed_owned:
            if creations and ref.oid in creations:
                self.out.append((KILL_ACTOR, ref.oid))
            value = ref.value
            if value is not None and value.kind == SHM:
                free_by_daemon.setdefault(value.daemon, []).append(ref.oid)
            for daemon, _node in ref.copies or ():
                free_by_daemon.setdefault(daemon, []).append(ref.oid)
            ref.copies = None
            ref.value = None
            self._log((ref.oid, "freed", None))
        for daemon, oids in free_by_daemon.items():
            if daemon not in self.dead_daemons:
                self.out.append((SEND, daemon, [P.OBJ_FREE, oids], ()))
        for parent, items in out.notices.items():
            self.out.append((SEND, parent, [P.REF_REMOVED, self.address, items], ()))

    def ref_removed(self, borrower: str, items: list) -> None:
        out = Release()
        for oid, count in items:
            self.refs.borrower_released(borrower, oid, count, out)
        if out:
            self.release(out)

    # ---- values ---------------------------------------------------------------------------
    def store(self, oid: bytes, value: Value, contains: list | None, registered_by: str | None) -> None:
        """A value arrived for `oid` (a reply, a borrower's answer, a failure)."""
        ref = self.refs.refs.get(oid)
        if ref is None:
            # Nobody here wants it any more: free it, and release what it contained.
            if value.kind == SHM and registered_by is None:
                self.out.append((SEND, value.daemon, [P.OBJ_FREE, [oid]], ()))
            if contains and registered_by is not None:
                items = [[i, 1] for i, owner in contains if owner != self.address]
                if items:
                    self.out.append((SEND, registered_by, [P.REF_REMOVED, self.address, items], ()))
            return
        waiters = ms.set_value(ref, value)
        if ref.value is not value:
            return  # it had a value already
        if contains:
            self.refs.set_contains(ref, contains, registered_by)
        if waiters:
            for waiter in waiters:
                if type(waiter) is TaskEntry:
                    self._dep_ready(waiter)
                elif type(waiter) is BorrowerWait:
                    self._send_value(waiter.requester, oid, ref.value, ref.contains)
                else:
                    self.out.append((WAKE, waiter, value.kind == ms.ERROR))
            if not ref.in_scope():  # the waiters were all that held it
                out = Release()
                self.refs.check(oid, out)
                if out:
                    self.release(out)

    def put(self, oid: bytes, value: Value, contains: list | None) -> None:
        ref = self.refs.add_owned(oid)
        ref.no_lineage = PUT
        ms.set_value(ref, value)
        if contains:
            self.refs.set_contains(ref, contains, None)

    def wait_for_values(self, refs: list, waiter_for) -> tuple[object, list]:
        """For get/wait: the current values of `refs`, and a waiter (made by
        `waiter_for(missing, ready)`, or None if not needed) registered on the missing ones."""
        values = []
        missing = []
        table = self.refs.refs
        for r in refs:
            ref = table.get(r.id)
            if ref is None:
                ref = self.refs.get_or_add_borrowed(r.id, r.owner)
            value = ref.value
            values.append(value)
            if value is None:
                missing.append(ref)
        if not missing:
            return None, values
        waiter = waiter_for(len(missing), len(refs) - len(missing))
        if waiter is not None:
            for ref in missing:
                self._add_waiter(ref, waiter)
        return waiter, values

    def stop_waiting(self, refs: list, waiter) -> None:
        table = self.refs.refs
        for r in refs:
            ref = table.get(r.id)
            if ref is not None:
                ms.remove_waiter(ref, waiter)

    def _add_waiter(self, ref, waiter) -> None:
        if ms.add_waiter(ref, waiter):
            self.out.append((SEND, ref.owner, [P.GET_VALUE, self.address, ref.oid], ()))

    def get_value(self, requester: str, oid: bytes) -> None:
        """A borrower asks for a value (answered now, or once it arrives)."""
        ref = self.refs.refs.get(oid)
        if ref is None:
            exc = errors.ObjectFreedError(f"object {oid.hex()} was already freed by its owner {self.address}")
            self._send_value(requester, oid, error_of(exc), None)
            return
        value = ref.value
        if value is not None and ref.owned and value.kind == SHM and value.daemon in self.dead_daemons:
            self.recover(ref, f"its node's daemon {value.daemon} died")
        if ref.value is not None:
            self._send_value(requester, oid, ref.value, ref.contains)
            return
        self._add_waiter(ref, BorrowerWait(requester))
        self.out.append((SEND, requester, [P.VALUE_PENDING, oid], ()))  # a get there truly blocks

    def value_pending(self, oid: bytes) -> None:
        """The owner of borrowed `oid` has no value yet: our get/wait callers block for real."""
        ref = self.refs.refs.get(oid)
        if ref is not None:
            for waiter in ms.pending_at_owner(ref):
                self.out.append((NUDGE, waiter))

    def _send_value(self, requester: str, oid: bytes, value: Value, contains: list | None) -> None:
        if contains:
            self.refs.register_borrower(contains, requester)
        payload = () if value.kind == SHM else value.frames
        self.out.append((SEND, requester, [P.VALUE_REPLY, oid, value.to_meta(contains), self.address], payload))

    def value_reply(self, oid: bytes, meta: list, frames: list, sender: str) -> None:
        value, contains = ms.value_from_meta(meta, frames, 1)
        self.store(oid, value, contains, sender)

    def copy_made(self, oid: bytes, daemon: str, node_id: str) -> None:
        """A node pulled a secondary copy of an object we own (reported by the reader)."""
        ref = self.refs.refs.get(oid)
        if ref is None or not ref.owned or ref.value is None or ref.value.kind != SHM:
            return
        if daemon == ref.value.daemon or daemon in self.dead_daemons:
            return
        if ref.copies is None:
            ref.copies = [(daemon, node_id)]
        elif all(d != daemon for d, _ in ref.copies):
            ref.copies.append((daemon, node_id))
        self._log((oid, "copy", node_id))

    def lost_on_read(self, oid: bytes, lost_at: str) -> Value | None:
        """A reader could not fetch `oid` from `lost_at`. Returns the value to wait for next
        (None: wait for a rebuilt or re-sent value; the lost one: the death notice is coming)."""
        ref = self.refs.refs.get(oid)
        if ref is None:
            raise errors.ObjectLostError(f"object {oid.hex()} is gone")
        current = ref.value
        if current is not None and current.kind == SHM and current.daemon == lost_at:
            if ref.owned and lost_at in self.dead_daemons:
                self.recover(ref, f"its node's daemon {lost_at} died")
            elif not ref.owned:
                ms.lose_value(ref)
                ref.requested = False  # ask the owner again
        return ref.value

    # ---- submission ---------------------------------------------------------------------------
    def submit(self, entry: TaskEntry) -> None:
        """Registers a task (its return ids are owned from now on) and resolves its arguments."""
        refs = self.refs
        for rid in entry.return_ids:
            refs.add_owned(rid)
        self._hold_arguments(entry)
        self.tasks[entry.task_id] = entry
        if entry.extra is not None and entry.kind == NORMAL and entry.extra.get("streaming"):
            self.streams[entry.task_id] = Stream(entry.return_ids[0] if entry.extra.get("dynamic") else None)
        self._log((entry.task_id, "submit", WAITING_DEPS))
        if entry.actor is not None:
            self.out.append((ACTOR_SUBMITTED, entry))
        self._resolve(entry)

    def _hold_arguments(self, entry: TaskEntry) -> None:
        """Counts the task's argument refs as submitted (its records: `submitted_refs`, and
        of the top-level ones `dep_refs`)."""
        submitted = entry.argument_refs()
        records = self.refs.add_submitted(submitted) if submitted else None
        entry.submitted_refs = records
        entry.dep_refs = records[:len(entry.deps)] if entry.nested else records or ()

    def _resolve(self, entry: TaskEntry) -> None:
        """Waits for top-level ref arguments, then queues the task."""
        unresolved = 0
        for dep in entry.dep_refs:
            if dep.value is None:
                unresolved += 1
                self._add_waiter(dep, entry)
        entry.unresolved = unresolved
        if unresolved == 0:
            self._queue(entry)

    def _dep_ready(self, entry: TaskEntry) -> None:
        entry.unresolved -= 1
        if entry.unresolved == 0 and entry.state == WAITING_DEPS and self.tasks.get(entry.task_id) is entry \
                and not entry.cancelled:
            self._queue(entry)

    def _queue(self, entry: TaskEntry) -> None:
        """All arguments have values: inline them into the spec and hand over."""
        by_daemon = None
        if entry.deps:
            # small pickles without refs inside travel packed: their lengths, one joined frame
            packs = [None if dep.contains else dep.value.packed for dep in entry.dep_refs]
            if None not in packs:  # (every argument such a value: no per-argument loop)
                meta, packed, dep_frames = list(map(len, packs)), packs, []
            else:
                meta, packed, dep_frames, by_daemon = self._argument_values(entry, packs)
                if meta is None:
                    return  # an argument is an error: the task failed with it
            if packed:
                dep_frames.append(packed[0] if len(packed) == 1 else b"".join(packed))
            frames = 1 + len(entry.arg_frames) + len(dep_frames)
            if frames > P.MAX_MESSAGE_FRAMES:  # (its push could not be sent: fail it, never hang)
                self.fail(entry, error_of(ValueError(
                    f"task {entry.name}: its {len(entry.deps)} by-reference arguments make a message "
                    f"of {frames} frames, more than the {P.MAX_MESSAGE_FRAMES} one message carries; "
                    f"pass the refs inside a list (they arrive as refs) or fewer per call")))
                return
            entry.dep_meta, entry.dep_frames = meta, dep_frames
        entry.state = QUEUED
        self._log((entry.task_id, "queue", QUEUED))
        if entry.kind == NORMAL:
            place_on = entry.extra.get("place_on") if entry.extra is not None else None
            if place_on is not None:  # scheduling_strategy: SPREAD or NodeAffinitySchedulingStrategy
                self._queue_on(entry, *place_on)
                return
            daemon = None if by_daemon is None else \
                self.policy.locality(by_daemon, self.daemon_address, self.dead_daemons)
            if daemon is None:
                self.submitter.enqueue(entry, entry.shape, entry.resources)
            else:
                self.submitter.enqueue(entry, (entry.shape, daemon), entry.resources, daemon)
        else:
            self.out.append((ACTOR_ENQUEUE, entry))

    def _argument_values(self, entry: TaskEntry, packs: list) -> tuple[list | None, list, list, dict | None]:
        """`_queue`'s general case: each argument's metadata (protocol.py), the small pickles
        to pack (`packs[i]`: argument i's, or None), the other inline frames, and the
        shared-memory argument bytes per daemon holding them (None: no such argument);
        (None, ..) if an argument's value is an error (the task is failed with it)."""
        meta, packed, dep_frames, by_daemon = [], [], [], None
        add_meta, add_frames, add_packed = meta.append, dep_frames.extend, packed.append
        inline, error = ms.INLINE, ms.ERROR
        for (oid, owner), dep, packable in zip(entry.deps, entry.dep_refs, packs, strict=True):
            if packable is not None:
                add_meta(len(packable))
                add_packed(packable)
                continue
            value = dep.value
            kind = value.kind
            if kind == inline:
                frames = value.frames
                add_meta([kind, len(frames), dep.contains, oid])
                add_frames(frames)
            elif kind == error:
                self.fail(entry, value)
                return None, packed, dep_frames, by_daemon
            else:
                add_meta([kind, value.node_id, value.size, dep.contains, oid, value.daemon, owner])
                if by_daemon is None:
                    by_daemon = {}
                by_daemon[value.daemon] = by_daemon.get(value.daemon, 0) + value.size
            if dep.contains:
                entry.submitted_refs = entry.submitted_refs + self.refs.add_submitted(dep.contains)
        return meta, packed, dep_frames, by_daemon

    # ---- leases (callbacks of the submitter) ----------------------------------------------------
    def _queue_on(self, entry: TaskEntry, daemon: str, pinned: bool, soft: bool = False) -> None:
        """Leases for `entry` from `daemon` first (SPREAD: it may spill them elsewhere; `soft`
        node affinity: only if that node cannot run it at all), or only from it (`pinned`: hard
        node affinity; its node dead: the task fails)."""
        if not pinned:
            if daemon in self.dead_daemons:
                daemon, soft = self.daemon_address, False
            if soft:
                self.submitter.enqueue(entry, (entry.shape, daemon, "soft"), entry.resources, daemon,
                                       {"soft_affinity": True})
            else:
                self.submitter.enqueue(entry, (entry.shape, daemon), entry.resources, daemon)
        elif daemon in self.dead_daemons:
            self.fail(entry, error_of(errors.TaskUnschedulableError(
                f"task {entry.name} cannot be scheduled: {_PINNED_NODE_DIED}")))
        else:
            self.submitter.enqueue(entry, (entry.shape, daemon, "pinned"), entry.resources, daemon, {"pinned": True})

    def _push(self, entry: TaskEntry, lease) -> None:
        entry.state = PUSHED
        entry.worker_id = lease.worker_id
        self._log((entry.task_id, "push", PUSHED))
        self.out.append((PUSH, entry, lease.address))

    def _request_lease(self, request_id: int, shape, resources: dict, daemon: str | None = None,
                       hops: int = 0, for_actor: bool = False, actor_options: dict | None = None) -> None:
        daemon = daemon or self.daemon_address
        self.lease_daemons[request_id] = daemon
        self.counters["lease_requests"] += 1
        self.on_event("lease_asked", request_id, resources, None)
        header = [P.LEASE_REQUEST, self.address, self.worker_id, request_id, resources, for_actor, hops]
        if actor_options:  # detached (outlives us), placement (needed to place, not held)
            header.append(actor_options)
        self.out.append((SEND, daemon, header, ()))

    def _return_lease(self, worker_id: bytes, daemon: str, retire: bool = False) -> None:
        self.counters["leases_returned"] += 1
        self.out.append((SEND, daemon, [P.LEASE_RETURN, worker_id, not retire], ()))

    def _cancel_lease_request(self, request_id: int) -> None:
        daemon = self.lease_daemons.pop(request_id, self.daemon_address)
        self.on_event("lease_answered", request_id, None, "cancelled")
        self.out.append((SEND, daemon, [P.LEASE_CANCEL, self.address, request_id], ()))

    def request_actor_lease(self, actor, resources: dict) -> None:
        """Asks our daemon for an actor's worker, or the daemon its scheduling strategy names
        (`actor.target`: [daemon, pinned, soft]; pinned to a dead node: the lease fails)."""
        target = getattr(actor, "target", None)
        daemon = None
        options = actor.lease_options()
        if target is not None:
            daemon, pinned = target[0], target[1]
            if daemon in self.dead_daemons:
                if pinned:
                    self.out.append((ACTOR_LEASE, actor, None, _PINNED_NODE_DIED))
                    return
                daemon = None
                if options:  # (soft affinity to a dead node: placed as any other actor)
                    options = {k: v for k, v in options.items() if k != "soft_affinity"}
        self._next_actor_request += 1
        request_id = self._next_actor_request
        self.actor_lease_requests[request_id] = actor
        actor.resources = resources
        self._request_lease(request_id, None, resources, daemon, for_actor=True, actor_options=options)

    def lease_granted(self, request_id: int, worker_id: bytes | None, address_or_error: str,
                      node_id: str, daemon: str, spill_to: str | None, now: float) -> None:
        if spill_to is not None:  # that node is busy or lacks the resources: ask the one it names
            actor = self.actor_lease_requests.get(request_id)
            submitter = self.submitter
            if actor is not None:
                resources = actor.resources
            elif request_id in submitter.request_shapes:
                resources = submitter.queues[submitter.request_shapes[request_id]].resources
            else:
                return
            self._request_lease(request_id, None, resources, spill_to, hops=1, for_actor=actor is not None,
                                actor_options=actor.lease_options() if actor is not None else None)
            return
        self.lease_daemons.pop(request_id, None)
        self.on_event("lease_answered", request_id, node_id if worker_id is not None else None,
                      None if worker_id is not None else address_or_error)
        actor = self.actor_lease_requests.pop(request_id, None)
        if actor is not None:
            grant = None if worker_id is None else (worker_id, address_or_error, node_id, daemon)
            self.out.append((ACTOR_LEASE, actor, grant, address_or_error))
            return
        if worker_id is None:  # infeasible: fail what waits for this shape
            shape = self.submitter.request_shapes.pop(request_id, None)
            queue = self.submitter.queues.get(shape)
            if queue is not None:
                queue.lease_requests.discard(request_id)
                error = errors.TaskUnschedulableError if queue.lease_options is not None else errors.EngineError
                if errors.PLACEMENT_GROUP_REMOVED in address_or_error:
                    error = errors.TaskPlacementGroupRemoved
                while queue.ready:
                    self.fail(queue.ready.popleft(), error_of(error(address_or_error)), address_or_error)
            return
        self.submitter.lease_granted(request_id, worker_id, address_or_error, node_id, daemon, now)

    # ---- replies -----------------------------------------------------------------------------------
    def task_reply(self, worker_addr: str, task_id: bytes, returns: list, borrowed: list | None,
                   worker_id: bytes, runtime: float | None, frames: list, now: float) -> None:
        entry = self.tasks.pop(task_id, None)
        if entry is None:
            return
        kind = entry.kind
        if kind == ACTOR_CREATION and worker_id != entry.worker_id:
            self.tasks[task_id] = entry  # a late reply from a worker the constructor no longer runs on
            return
        if runtime is not None:
            self.policy.task_ran(entry.fn_id, runtime)
        if kind != NORMAL:
            self._take_reply(entry, worker_addr, returns, borrowed, frames)
            return
        lease = self.submitter.task_replied(worker_id, task_id, now)
        try:
            self._take_reply(entry, worker_addr, returns, borrowed, frames)
        finally:  # (after its results are stored: the tasks they made ready may take the lease)
            if lease is not None:
                self.submitter.settle(lease, now)

    def _take_reply(self, entry: TaskEntry, worker_addr: str, returns: list, borrowed: list | None,
                    frames: list) -> None:
        """The rest of `task_reply`: retries, failures, and the values of a finished task."""
        task_id, kind = entry.task_id, entry.kind
        normal = kind == NORMAL
        if borrowed:
            self.refs.add_borrowers_from_reply(borrowed, worker_addr)
        failed = bool(returns) and returns[0][0] == ms.ERROR
        if not normal:
            if failed and kind == ACTOR_CREATION and len(returns[0]) > 3 and returns[0][3] == "arg_lost":
                self.out.append((ACTOR_ARG_LOST, entry))  # the actor discards that worker first
                self._rerun_after_lost_argument(entry)
                return
            self.out.append((ACTOR_TASK_DONE, entry))
        elif failed:
            if entry.retry_exceptions and entry.retries_left != 0:
                if entry.retries_left > 0:
                    entry.retries_left -= 1
                self.counters["task_retries"] += 1
                self.tasks[task_id] = entry
                entry.state = QUEUED
                self._log((task_id, "retry_exception", QUEUED))
                self.on_event("retry", task_id, entry.name, "it raised (retry_exceptions)")
                self.submitter.enqueue(entry, entry.shape, entry.resources)
                return
            if len(returns[0]) > 3 and returns[0][3] == "arg_lost":
                self._rerun_after_lost_argument(entry)
                return
        self._log((task_id, "reply", "failed" if failed else "done"))
        self.finished.append((task_id, entry.name, entry.kind, "failed" if failed else "done", entry.worker_id))
        if normal and task_id in self.streams:
            error = ms.value_from_meta(returns[0], frames, 1)[0] if failed else None
            self._end_stream(task_id, error)
            self.task_done(entry)
            return
        pos = 1
        table = self.refs.refs
        for rid, meta in zip(entry.return_ids, returns, strict=True):
            value, contains = ms.value_from_meta(meta, frames, pos)
            if value.kind != SHM:
                pos += meta[1]
            if value.kind != ms.ERROR:
                ref = table.get(rid)
                if ref is None:
                    pass
                elif normal:  # lineage: rebuild it (or a lost downstream object) by re-running
                    self.refs.keep_lineage(ref, entry)
                else:
                    ref.no_lineage = ACTOR_TASK
            self.store(rid, value, contains, worker_addr if contains else None)
        if kind == ACTOR_CREATION and entry.actor.restarts_left != 0:
            return  # a restart re-runs the constructor: keep its arguments alive until the actor dies
        self.task_done(entry)

    def task_done(self, entry: TaskEntry) -> None:
        """The task will not run again for now: release the counts its arguments held."""
        if self.centralized:
            self.out.append((META_DONE, entry))
        if entry.kind == NORMAL:
            entry.dep_meta = entry.dep_frames = None  # a re-run resolves its arguments again
        if entry.submitted_refs:
            out = Release()
            self.refs.remove_submitted(entry.submitted_refs, out)
            entry.submitted_refs = None
            if out:
                self.release(out)

    def fail(self, entry: TaskEntry, value: Value, why: str | None = None) -> None:
        """Stores an error under every return id of the task (`why`: for the timeline)."""
        self.tasks.pop(entry.task_id, None)
        self._log((entry.task_id, "fail", "failed"))
        self.on_event("failure", entry.task_id, entry.name, why)
        self.finished.append((entry.task_id, entry.name, entry.kind, "failed", entry.worker_id))
        for rid in entry.return_ids:
            self.store(rid, value, None, None)
        if entry.task_id in self.streams:
            self._end_stream(entry.task_id, value)
        self.task_done(entry)
        if entry.actor is not None:
            self.out.append((ACTOR_TASK_FAILED, entry, value))

    # ---- streaming generators ------------------------------------------------------------------------
    def generator_item(self, worker_addr: str, task_id: bytes, index: int, meta: list, frames: list) -> None:
        """Item `index` of a streaming task arrived (items come in order; a repeat is dropped)."""
        stream = self.streams.get(task_id)
        if stream is None or stream.done or index != stream.count + 1:
            return
        value, contains = ms.value_from_meta(meta, frames, 1)
        self._add_item(task_id, stream, value, contains, worker_addr if contains else None)

    def _add_item(self, task_id: bytes, stream: Stream, value: Value, contains, registered_by) -> None:
        stream.count += 1
        rid = return_id(task_id, stream.count)
        if not stream.released:  # held for the generator until it hands the item out
            self.refs.add_owned(rid).no_lineage = STREAMED
        self._log((rid, "streamed", None))
        self.store(rid, value, contains, registered_by)  # a released stream's item is freed here
        self._wake_stream(stream)

    def _end_stream(self, task_id: bytes, error: Value | None) -> None:
        """The task ended (`error`: how it failed, stored as the item after the last)."""
        stream = self.streams.get(task_id)
        if stream is None or stream.done:
            return
        if stream.dynamic is not None:  # its one ref gets the list of items (the shell builds it)
            stream.done = True
            if error is None:
                self.out.append((DYNAMIC_END, task_id, stream.count, stream.dynamic))
            else:
                self.store(stream.dynamic, error, None, None)
                self.release_stream(task_id, 0)
            return
        if error is not None:
            self._add_item(task_id, stream, error, None, None)
        stream.done = True
        self._wake_stream(stream)
        if stream.released:
            del self.streams[task_id]

    def _wake_stream(self, stream: Stream) -> None:
        for waiter in stream.waiters:
            self.out.append((WAKE, waiter, False))
        stream.waiters.clear()

    def release_stream(self, task_id: bytes, handed_out: int) -> None:
        """The caller's generator is gone after handing out items 1..`handed_out`: drop the
        stream's counts on the rest; later items are freed as they arrive."""
        stream = self.streams.get(task_id)
        if stream is None or stream.released:
            return
        stream.released = True
        out = Release()
        for index in range(handed_out + 1, stream.count + 1):
            self.refs.remove_local(return_id(task_id, index), out)
        if stream.done:
            del self.streams[task_id]
        if out:
            self.release(out)

    # ---- failures -----------------------------------------------------------------------------------
    def worker_died(self, worker_id: bytes, address: str, reason: str) -> None:
        self.dead_processes.add(address)
        out = Release()
        self.refs.process_died(address, out)
        if out:
            self.release(out)
        self._fail_objects_of_dead_owner(address, reason)
        for entry in self.submitter.worker_died(worker_id):
            self._retry_or_fail(entry, reason)

    def node_died(self, node_id: str, daemon: str, client_addrs: list, reason: str) -> bool:
        """A node died: retry its tasks, fail its owners' refs, rebuild lost objects.
        Returns False if this death was known already."""
        if daemon in self.dead_daemons:
            return False
        self.dead_daemons.add(daemon)
        why = f"node {node_id} died ({reason})"
        out = Release()
        for addr in client_addrs:
            self.dead_processes.add(addr)
            self.refs.process_died(addr, out)
            self._fail_objects_of_dead_owner(addr, why)
        if out:
            self.release(out)
        submitter = self.submitter
        for lease in [le for le in submitter.leases_by_worker.values() if le.daemon == daemon]:
            for entry in submitter.worker_died(lease.worker_id):
                self._retry_or_fail(entry, why)
        unschedulable = []
        for queue in submitter.queues.values():
            if queue.daemon == daemon and queue.lease_options is not None and queue.lease_options.get("pinned"):
                unschedulable.extend(queue.ready)  # pinned there
                queue.ready.clear()
            elif queue.daemon == daemon:  # its arguments' (or soft affinity's) node is gone: ask our own daemon
                queue.daemon = queue.lease_options = None
        for entry in unschedulable:
            self._queue_on(entry, daemon, True)  # fails it
        for request_id, asked in list(self.lease_daemons.items()):
            if asked == daemon:  # that request will never be answered: ask elsewhere
                self.lease_daemons.pop(request_id, None)
                actor = self.actor_lease_requests.get(request_id)
                if actor is None:
                    self.on_event("lease_answered", request_id, None, f"node {node_id} died")
                if actor is not None:
                    self.actor_lease_requests.pop(request_id, None)
                    self.request_actor_lease(actor, actor.resources)  # elsewhere, or fails if pinned there
                    continue
                shape = submitter.request_shapes.pop(request_id, None)
                queue = submitter.queues.get(shape)
                if queue is not None:
                    queue.lease_requests.discard(request_id)
                    submitter.dispatch(queue)
        for ref in list(self.refs.refs.values()):
            if ref.copies:
                ref.copies = [c for c in ref.copies if c[0] != daemon] or None
            value = ref.value
            if ref.owned and value is not None and value.kind == SHM and value.daemon == daemon \
                    and not ref.freed:
                self.recover(ref, why)
        waiting, self.waiting_for_node_death = self.waiting_for_node_death, []
        for entry in waiting:
            if self.tasks.get(entry.task_id) is entry:  # not failed (e.g. its actor killed) meanwhile
                self._rerun_after_lost_argument(entry)
        return True

    def _retry_or_fail(self, entry: TaskEntry, reason: str) -> None:
        if entry.cancelled:
            exc = errors.TaskCancelledError(f"task {entry.name} was cancelled")
        elif errors.PLACEMENT_GROUP_REMOVED in reason:  # its worker was stopped for that: not retried
            exc = errors.TaskPlacementGroupRemoved(f"task {entry.name} failed: {reason}")
        elif entry.retries_left != 0:
            if entry.retries_left > 0:
                entry.retries_left -= 1
            self.counters["task_retries"] += 1
            self._log((entry.task_id, "retry", reason))
            self.on_event("retry", entry.task_id, entry.name, reason)
            self._resubmit(entry, reason)  # re-resolves arguments: some may have been lost too
            return
        else:
            exc = errors.WorkerCrashedError(f"task {entry.name} failed: {reason}, and it has no retries left")
        self.fail(entry, error_of(exc), str(exc))

    def _fail_objects_of_dead_owner(self, owner: str, reason: str) -> None:
        """Fate-sharing: objects owned by a dead process fail with OwnerDiedError."""
        for ref in list(self.refs.refs.values()):
            if ref.owner == owner and not ref.owned and ref.value is None:
                exc = errors.OwnerDiedError(f"object {ref.oid.hex()} is lost: its owner {owner} died ({reason})")
                self.store(ref.oid, error_of(exc), None, None)

    # ---- recovery ------------------------------------------------------------------------------------
    def recover(self, ref, why: str) -> None:
        """Gives the lost owned object `ref` a value again (see recovery.py)."""
        ms.lose_value(ref)
        self._log((ref.oid, "lost", why))
        self._apply_plan(self.recovery.plan(ref, why), why)

    def _apply_plan(self, actions: list, why: str) -> None:
        for action in actions:
            kind = action[0]
            if kind == PIN:
                _, ref, daemon, node_id = action
                ref.copies = [c for c in ref.copies if c[0] != daemon] or None
                self._log((ref.oid, "pin_copy", node_id))
                self.out.append((SEND, daemon, [P.OBJ_PIN, ref.oid, self.address], ()))
                self.store(ref.oid, shm_value(node_id, ref.size, daemon), None, None)
            elif kind == LOST:
                _, ref, exc = action
                ms.lose_value(ref)
                self._log((ref.oid, "unrecoverable", str(exc)))
                self.store(ref.oid, error_of(exc), None, None)
            elif kind == RESUBMIT:
                task = action[1]
                if task.task_id in self.tasks:
                    continue
                if task.retries_left > 0:
                    task.retries_left -= 1
                self.counters["reconstructions"] += 1
                table = self.refs.refs
                for rid in task.return_ids:  # rebuild every lost return of the task
                    other = table.get(rid)
                    if other is not None and other.value is not None and is_lost(other, self.dead_daemons):
                        ms.lose_value(other)
                self._log((task.task_id, "reconstruct", why))
                self.on_event("retry", task.task_id, task.name, f"reconstructing a lost object: {why}")
                self._rerun(task)

    def _resubmit(self, entry: TaskEntry, why: str) -> None:
        """Runs `entry` again, rebuilding lost arguments first (a borrowed one whose copy died
        with its node is asked of its owner again, who rebuilds it)."""
        self._apply_plan(self.recovery.plan_arguments(entry, why), why)
        table, dead = self.refs.refs, self.dead_daemons
        for oid, _owner in entry.deps:
            dep = table.get(oid)
            if dep is not None and not dep.owned and dep.value is not None and is_lost(dep, dead):
                ms.lose_value(dep)
                dep.requested = False  # the waiter _resolve adds asks the owner (GET_VALUE)
        self._rerun(entry)

    def rerun_creation(self, entry: TaskEntry, why: str) -> None:
        """An actor restarts (`why`: its process died): its creation runs again once its
        arguments are resolved again, lost ones rebuilt first; ACTOR_ENQUEUE follows, as after
        `submit`. The creation still holds its argument counts (kept while restarts are left)."""
        self._log((entry.task_id, "actor_restart", why))
        self._resubmit(entry, why)

    def end_creation(self, entry: TaskEntry) -> None:
        """The actor is dead for good: its creation will not run again. A re-run still
        resolving or in flight is dropped (a late reply is ignored); its counts are released."""
        if self.tasks.get(entry.task_id) is entry:
            del self.tasks[entry.task_id]
            self._log((entry.task_id, "dropped", None))
        if entry in self.waiting_for_node_death:
            self.waiting_for_node_death.remove(entry)
        if entry.submitted_refs:
            self.task_done(entry)

    def _rerun(self, entry: TaskEntry) -> None:
        """Submits `entry` again. A retried task still holds its argument counts; they are
        released only after the new ones are taken, so a lost argument's record (and its
        lineage) survives the handover."""
        old = entry.submitted_refs
        self._hold_arguments(entry)
        if old:
            out = Release()
            self.refs.remove_submitted(old, out)
            if out:
                self.release(out)
        entry.state = WAITING_DEPS
        entry.worker_id = None
        entry.dep_meta = entry.dep_frames = None
        self.tasks[entry.task_id] = entry
        self._log((entry.task_id, "resubmit", WAITING_DEPS))
        self._resolve(entry)

    def _rerun_after_lost_argument(self, entry: TaskEntry) -> None:
        """A worker could not fetch an argument.

        If an argument is (or becomes) an error, the task fails with it; if an argument's
        node is known dead or its value was since rebuilt elsewhere, the task is resubmitted
        (rebuilding lost arguments first); otherwise the node's death notice is still on
        its way and the task waits for it.
        """
        table = self.refs.refs
        current = []
        for oid, _owner in entry.deps:
            dep = table.get(oid)
            value = dep.value if dep is not None else None
            if value is not None and value.kind == ms.ERROR:
                self.fail(entry, value)
                return
            current.append(None if value is None or value.kind != SHM or value.daemon in self.dead_daemons
                           else value.daemon)
        used = [m[5] if type(m) is list and m[0] == SHM else None for m in entry.dep_meta or ()]
        if None not in current and current == used:
            self.tasks[entry.task_id] = entry
            self._log((entry.task_id, "argument_fetch_failed", "waiting_for_node_death"))
            self.waiting_for_node_death.append(entry)
            return
        self.counters["task_retries"] += 1
        self.on_event("retry", entry.task_id, entry.name, "an argument's node died")
        self._resubmit(entry, "an argument's node died")

    # ---- cancel ---------------------------------------------------------------------------------------
    def cancel(self, task_id: bytes, force: bool, recursive: bool = True) -> None:
        """Cancels a pending task: one not pushed yet fails now; a pushed one is the worker's
        to interrupt (`recursive`: it cancels the tasks it submitted too). An actor call not
        pushed yet fails now; a pushed one is the actor's: dropped if it waits there, marked
        (`is_canceled()`) if it runs in a thread, its asyncio task cancelled in an async actor."""
        entry = self.tasks.get(task_id)
        if entry is None:  # finished: as in Ray, its outputs are not rebuilt by re-running it
            ref = self.refs.refs.get(return_id(task_id, 1))
            if ref is not None and ref.task is not None and ref.task.task_id == task_id:
                ref.task.cancelled = True
                self._log((task_id, "cancel", "lineage"))
            return
        entry.cancelled = True
        self._log((task_id, "cancel", entry.state))
        if entry.kind == ACTOR_METHOD:  # as Ray: a queued call is dropped, a running one only told
            if entry.state != PUSHED:  # waiting for its arguments or its turn in the caller's order
                self.fail(entry, error_of(errors.TaskCancelledError(f"task {entry.name} was cancelled")))
            elif entry.actor.address is not None:  # never force: engine.kill ends an actor
                self.out.append((SEND, entry.actor.address, [P.CANCEL_TASK, task_id, False, recursive], ()))
            return
        if entry.state == WAITING_DEPS or self.submitter.remove_queued(task_id) is not None:
            self.fail(entry, error_of(errors.TaskCancelledError(f"task {entry.name} was cancelled")))
            return
        lease = self.submitter.find_in_flight(task_id)
        if lease is not None:
            # The worker knows whether the task runs or waits behind another; with force it
            # exits only if this task is the one running.
            self.out.append((SEND, lease.address, [P.CANCEL_TASK, task_id, force, recursive], ()))

    # ---- introspection ----------------------------------------------------------------------------------
    def owns_anything(self) -> bool:
        """True while this process owns an object still in scope, has a pending task, or is a
        link in a borrower tree (others borrow a ref through it)."""
        if self.tasks:
            return True
        for ref in self.refs.refs.values():
            if ref.owned and not ref.freed:
                return True
            if not ref.owned and any(count > 0 for count in (ref.borrowers or {}).values()):
                return True
        return False

    def validate_state(self) -> None:
        """Checks the invariants linking tasks, leases, values and waiters (tests call it after
        every step). Raises AssertionError."""
        self.refs.validate_state()
        in_flight = {}
        for lease in self.submitter.leases_by_worker.values():
            for task_id, entry in lease.in_flight.items():
                in_flight[task_id] = entry
        queued = {e.task_id for q in self.submitter.queues.values() for e in q.ready}
        for task_id, entry in self.tasks.items():
            assert entry.task_id == task_id
            for rid in entry.return_ids:
                ref = self.refs.refs.get(rid)
                assert ref is None or ref.owned, f"return {rid.hex()} of a pending task is not owned"
            if entry.state == WAITING_DEPS:
                missing = sum(1 for oid, _ in entry.deps if self.refs.refs[oid].value is None)
                assert entry.unresolved == missing or entry in self.waiting_for_node_death, \
                    f"task {entry.name}: {entry.unresolved} unresolved, {missing} missing"
                for oid, _ in entry.deps:
                    dep = self.refs.refs[oid]
                    if dep.value is None:
                        assert entry in (dep.waiters or ()), f"task {entry.name} is not waiting on its argument"
            elif entry.state == QUEUED and entry.kind == NORMAL:
                assert task_id in queued or entry in self.waiting_for_node_death, \
                    f"queued task {entry.name} is in no queue"
            elif entry.state == PUSHED and entry.kind == NORMAL:
                assert task_id in in_flight or entry in self.waiting_for_node_death, \
                    f"pushed task {entry.name} is on no lease"
        for task_id in in_flight:
            assert task_id in self.tasks, "a lease carries a task that is not pending"
        for task_id in queued:
            assert task_id in self.tasks, "a queue holds a task that is not pending"
        for task_id, stream in self.streams.items():
            assert not (stream.done and stream.released), "a finished, released stream is kept"
            assert stream.done or task_id in self.tasks, "an unfinished stream has no pending task"
            assert not (stream.done and stream.waiters), "a finished stream has waiters"
            if not stream.released:
                for index in range(1, stream.count + 1):
                    ref = self.refs.refs.get(return_id(task_id, index))
                    assert ref is None or ref.owned, "a streamed item is not owned"
