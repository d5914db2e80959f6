"""The core worker: every driver and worker process runs one. The shell around the owner's logic.

Owns the process's transport and I/O thread, the state lock, and the application of the
instructions that the pure `ownership.task_manager.TaskManager` returns (send a message,
push a task, wake a waiter, hand a task to its actor). The logic — task lifecycle, values,
reference counts, lineage, recovery, leases — lives in `engine/ownership/`; `get`/`put`/
`wait` live in `worker/objects.py`. Tasks are pushed straight to leased workers; the head is
never contacted on the task path (§3).

Threading: user threads (the driver's, or a worker's executor) call `submit_task`, `put`,
`get`, `wait`; the I/O thread receives replies and requests. Both mutate state only under
`self.lock` and apply the task manager's instructions before releasing it.
`ObjectRef.__del__` and shared-memory view finalizers never take it: they append to the
lock-free `ref_ops` deque, drained under the lock by whoever comes next. Sends go through
the transport, whose own lock keeps per-peer order.

Failures: every wait has a deadline or is tied to a death notice; a handler that raises is
logged and counted (`stats()["handler_errors"]`), and the loop goes on; a malformed message
is dropped and counted (`stats()["malformed"]`, rpc/schema.py). Death notices (of workers,
nodes, and the driver's own daemon: `LocalNodeDiedError` for every wait) are taken in
`worker/deaths.py`.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time

from .. import errors, ids
from ..object_ref import ObjectRef
from ..ownership import task_manager as tm
from ..ownership.task_manager import TaskEntry, TaskManager
from ..rpc import notices
from ..rpc import protocol as P
from ..rpc.schema import Inbox
from ..rpc.transport import Transport, pack
from ..state import callsites
from ..state.spans import EVENTS
from ..store.arena_client import ArenaClient
from ..store.create_ahead import DEFAULT_MAX_BYTES as DEFAULT_PUT_AHEAD_MAX_BYTES
from ..store.create_ahead import CreateAhead
from ..store.pin_cache import PinCache
from ..util.handler_errors import log_handler_error
from . import cancellation, deaths, handlers, objects, spin_window
from .log_printer import LogPrinter
from .requests import Requests

log = logging.getLogger("ownrun.worker")

DEFAULT_CONFIG = {
    "inline_threshold": 100 * 1024,
    "put_ahead_max_bytes": DEFAULT_PUT_AHEAD_MAX_BYTES,  # 0: never create a put's object ahead
    "max_in_flight_per_worker": 8,
    "lease_idle_timeout": 1.0,
    "rpc_timeout": 30.0,
    "get_spin_us": spin_window.MAX_NS // 1000,  # a driver's get polls its reply this long at most (0: never)
}


# The I/O loop's sleep when no lease request or cached pin needs the 100 ms housekeeping tick.
IDLE_TICK_MS = 1000


class CoreWorker:
    handler_errors_in_process = 0  # over every core worker this process ran (tests check it)
    malformed_in_process = 0  # malformed messages dropped by them (tests check it)
    unauthorized_in_process = 0  # notices refused for want of our token (rpc/notices.py; tests check it)

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
        # (task id, items handed out) of dropped streaming generators (appended from any
        # thread, even from a finalizer: applied with the ref ops, under the lock)
        self.released_streams: list = []
        self.tm = TaskManager(self.address, daemon_address, worker_id, self.config["max_in_flight_per_worker"])
        self.tm.centralized = self.config.get("metadata", "ownership") == "centralized"
        self.tm.on_event = EVENTS.owner_event  # lease waits, retries, failures on the timeline
        self.refs = self.tm.refs
        self.actors: dict = {}  # actor id -> ActorState
        self.actor_by_creation = self.tm.actor_by_creation  # creation return id -> ActorState
        self.arena = ArenaClient()
        self.pins = PinCache()  # pins this process holds on local objects (objects.py)
        self.put_ahead = CreateAhead(self.config["put_ahead_max_bytes"])  # the next put's object
        self.callsites = callsites.Callsites()  # OWNRUN_RECORD_CALLSITES=1: where objects were created
        self.requests = Requests(self.transport, self.address, self.config["rpc_timeout"])
        self.call, self.call_async = self.requests.call, self.requests.call_async
        self._ids = ids.IdGenerator()
        self._fn_sent: dict[str, set] = {}  # worker address -> fn ids it has
        self.inline_threshold = self.config["inline_threshold"]
        self.executor = None  # set in worker processes
        self.stopping = False
        self.node_info = node_info or {}
        self.node_id = self.node_info.get("node_id")
        self.handler_errors = 0
        self.log_printer = LogPrinter()  # worker output lines, written by a thread of their own
        self._node_death = threading.Event()  # set on every node death notice (readers re-check)
        self.failed_with: errors.EngineError | None = None  # our daemon died, or shutdown: see fail_waiters
        self._daemon_pid: int | None = None  # a driver's daemon on this machine: watched (pidfd)
        self._daemon_pidfd: int | None = None
        self.notice_token = notices.new_token()  # proof of our daemon's and the head's notices
        self._handlers = handlers.for_core_worker(self)  # message type -> handler (I/O thread)
        self.inbox = Inbox(log, f"{mode} {self.address}", self._handlers)  # drops malformed messages
        # Reading the inbox and handling what it holds is one thread's at a time (`_read_lock`:
        # message order); with a unix transport one more thread reads besides the I/O thread
        # (`_reader_slot`): a driver's thread blocked in get (`wait_reading`), a worker's idle
        # executor waiting for its next push (`wait_idle`). Not a worker's task blocked in a
        # nested get: that ran slower (100x100 nested tasks 13.5-14.8k vs 19-21k tasks/s).
        self._read_lock = threading.Lock()
        self._reader_slot = threading.Lock()  # held by the one reading thread (others wait plainly)
        self._reading: threading.Event | None = None  # the event the reading thread waits for
        self._others_read = hasattr(self.transport, "wait_events") and \
            os.environ.get("OWNRUN_CALLER_READS", "1") != "0"
        self._callers_read = mode == "driver" and self._others_read
        self._spin = spin_window.SpinWindow(int(self.config["get_spin_us"] * 1000))  # the reader's polls
        self._io_thread = threading.Thread(target=self._io_loop, name="ownrun-io", daemon=True)
        self._io_thread.start()

    # ---- names other modules use ------------------------------------------------------------
    @property
    def tasks(self) -> dict:
        return self.tm.tasks

    @property
    def counters(self) -> collections.Counter:
        return self.tm.counters

    @property
    def dead_processes(self) -> set:
        return self.tm.dead_processes

    @property
    def head_address(self) -> str:
        return self.node_info["head_address"]

    def register_driver(self) -> None:
        self.node_info = self.call(self.daemon_address, P.REGISTER_CLIENT, self.worker_id, os.getpid(), "driver",
                                   self.notice_token)
        self.node_id = self.node_info["node_id"]
        if self.node_info.get("pid") and self.node_info.get("host") == socket.gethostname():
            self._daemon_pid = self.node_info["pid"]  # the I/O thread watches it from now on
            self.transport.wake()

    def add_handler(self, kind: int, handler) -> None:
        self._handlers[kind] = handler

    def next_id(self) -> bytes:
        return self._ids.next_task_id()

    def new_ref(self, oid: bytes) -> ObjectRef:
        """An ObjectRef to an object we own whose record already counts it. Lock held."""
        return ObjectRef(oid, self.address, self.ref_ops)

    # ---- the I/O thread ---------------------------------------------------------------------
    def _io_loop(self) -> None:
        transport = self.transport
        next_housekeeping = time.monotonic() + 0.1
        while not self.stopping:
            if self._daemon_pid is not None and self._daemon_pidfd is None:
                deaths.watch_daemon(self)
            try:
                if self._others_read:
                    events = transport.wait_events(self._poll_timeout_ms(next_housekeeping))
                    handled = False
                    if events:
                        with self._read_lock:
                            handled = self._handle_input(*transport.take(events))
                    reading = self._reading
                    if handled and reading is not None and reading.is_set():
                        transport.nudge()  # the reader's wait is over: we read what it waited for
                else:
                    self._handle_input(*transport.poll(self._poll_timeout_ms(next_housekeeping)))
            except Exception:  # noqa: BLE001 - transport closed during shutdown
                if self.stopping:
                    return
                raise
            if self.ref_ops or self.released_streams or time.monotonic() >= next_housekeeping:
                with self.lock:
                    self._apply_ref_ops()
                    now = time.monotonic()
                    if now >= next_housekeeping:
                        next_housekeeping = now + 0.1
                        self.tm.submitter.return_idle(now, self.config["lease_idle_timeout"])
                        if len(self.pins):
                            objects.unpin(self)
                    self.apply()

    def _handle_input(self, messages: list, tokens: list) -> bool:
        """Handles what the transport read, in order (the reading thread: `_read_lock`).
        Returns whether there were messages."""
        if tokens and "local-daemon" in tokens:
            with self.lock:
                deaths.local_node_died(self, f"its node daemon (pid {self._daemon_pid}) exited")
        if not messages:
            return False
        handlers, checked, instructions = self._handlers, self.inbox.header, self.tm.out
        with self.lock:
            for frames in messages:
                header = checked(frames)
                if header is None:  # malformed (or not a type this process handles): dropped
                    CoreWorker.malformed_in_process += 1
                    continue
                try:
                    handlers[header[0]](header, frames)
                except Exception:  # noqa: BLE001 - keep serving other messages
                    self.handler_errors += 1
                    CoreWorker.handler_errors_in_process += 1
                    log_handler_error(log, "failed to handle a message")
                if instructions:
                    self.apply()  # before the next message: its handler may act at once
        return True

    def wait_reading(self, event: threading.Event, timeout: float | None) -> bool:
        """`event.wait(timeout)`, except that in a driver with a unix transport this thread
        reads and handles the inbox itself meanwhile, so the reply it waits for wakes this
        thread, not the I/O thread (which stops watching the inbox meanwhile: transport
        `reader_starts`). If the I/O thread read what ended the wait after all (it was already
        awake for it), it nudges the reader. Each poll is at most
        20 ms (a safety net, should a nudge ever be missed); timers stay with the I/O thread.
        One thread reads at a time (`_reader_slot`); others blocked meanwhile wait on their
        event, set by whichever thread handles their reply."""
        if not self._callers_read or threading.current_thread() is self._io_thread \
                or not self._reader_slot.acquire(blocking=False):  # one reader: others are notified
            return event.wait(timeout)
        return self._read_until(event, timeout, 20, spin=True)

    def wait_idle(self, event: threading.Event) -> None:
        """A worker's executor thread with nothing to run waits for `event` (its next push, or
        exit) reading and handling the inbox as `wait_reading` does: the push it will run is
        read by this thread, not handed over by the I/O thread. Its safety net is
        `IDLE_TICK_MS`: an idle worker must not wake fifty times a second."""
        if not self._others_read or not self._reader_slot.acquire(blocking=False):
            event.wait()
            return
        self._read_until(event, None, IDLE_TICK_MS, IDLE_TICK_MS)

    def _read_until(self, event: threading.Event, timeout: float | None, longest_ms: int,
                    first_ms: int = 2, spin: bool = False) -> bool:
        """The reading wait of `wait_reading` and `wait_idle` (`_reader_slot` held; released
        here): with `spin`, first polls without sleeping for the spin window (spin_window.py)
        if the machine has a CPU to spare; then polls of `first_ms`, doubling up to
        `longest_ms`, until `event` is set."""
        transport = self.transport
        deadline = None if timeout is None else time.monotonic() + timeout
        self._reading = event
        transport.reader_starts()  # until `reader_stops` below: the I/O thread leaves the inbox to us
        started = time.monotonic_ns() if spin else 0
        try:
            if spin and self._spin.window_ns and not self.stopping and spin_window.spare_cpu():
                until = started + self._spin.window_ns
                if deadline is not None:
                    until = min(until, started + int(timeout * 1e9))
                while not event.is_set():
                    events = transport.poll_inbound()
                    if events:
                        with self._read_lock:
                            self._handle_input(*transport.take(events))
                    elif time.monotonic_ns() >= until:
                        break
            wait_ms = first_ms
            while not event.is_set():
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    wait_ms = max(1, min(wait_ms, int(left * 1000) + 1))
                if self.stopping:  # the transport is closing: wait as any other thread
                    transport.reader_stops()
                    return event.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
                events = transport.wait_events(wait_ms, reader=True)
                wait_ms = min(longest_ms, wait_ms * 2)
                if events:
                    with self._read_lock:
                        self._handle_input(*transport.take(events))
            if spin:
                self._spin.waited(time.monotonic_ns() - started)
            return True
        except (OSError, ValueError):  # the transport closed under us (shutdown): wait plainly
            transport.reader_stops()
            return event.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        finally:
            self._reading = None
            transport.reader_stops()  # (again, if a path above did: it is idempotent)
            self._reader_slot.release()
            if transport.backlogged():  # connections this thread left unread: the I/O thread's now
                transport.wake()

    # ---- deaths (see deaths.py) -----------------------------------------------------------------
    def fail_waiters(self, exc: errors.EngineError) -> None:
        """Ends every wait with `exc` (shutdown, any thread); later calls raise it at once."""
        with self.lock:
            deaths.fail_waiters(self, exc)

    def check_local_node(self) -> None:
        """Raises the error every call fails with once our node died or we shut down."""
        failed = self.failed_with
        if failed is not None:
            raise type(failed)(str(failed))

    def _poll_timeout_ms(self, next_housekeeping: float) -> int:
        """How long the I/O loop may sleep. Outstanding lease requests and pins to release need the
        100 ms housekeeping tick (a recall does not: a lease goes back when its task finishes, and
        the recall's window is a deadline the submitter checks then); leases only the moment the
        first idle one is due back (`lease_idle_timeout` after it went idle: an owner using its
        lease every frame never wakes for it); a process holding nothing (an idle worker, an owner
        between frames) sleeps up to `IDLE_TICK_MS`, so hundreds of idle processes do not wake the
        machine ten times a second each. Dropped refs (`ref_ops`, which never wake the loop) are
        applied on that slower tick at the latest. Flags are read without the lock (a stale answer
        only delays one tick). Asked before every poll, busy or not: capping a busy loop's sleep at
        the housekeeping tick instead woke each of the main job's ~250 processes (and ran its
        housekeeping) after every message it got: ~7% more CPU for the whole job."""
        submitter = self.tm.submitter
        if submitter.request_shapes or len(self.pins):
            return max(1, min(100, int((next_housekeeping - time.monotonic()) * 1000) + 1))
        if submitter.leases_by_worker:
            with self.lock:
                due = submitter.next_idle_expiry(self.config["lease_idle_timeout"])
            if due is not None:
                due = max(due, next_housekeeping)  # housekeeping returns it, not before its tick
                return max(1, min(IDLE_TICK_MS, int((due - time.monotonic()) * 1000) + 1))
        return IDLE_TICK_MS

    # ---- applying the task manager's instructions ---------------------------------------------
    def apply(self) -> None:
        """Carries out the task manager's instructions, in order. Lock held."""
        out = self.tm.out
        send = self.transport.send
        while out:
            ins = out.popleft()
            kind = ins[0]
            if kind == tm.SEND:
                send(ins[1], [pack(ins[2]), *ins[3]] if ins[3] else [pack(ins[2])])
            elif kind == tm.PUSH:
                self.push_to(ins[1], ins[2])
            elif kind == tm.WAKE:
                ins[1].ready_one(ins[2])
            elif kind == tm.NUDGE:
                ins[1].nudge()
            elif kind == tm.ACTOR_SUBMITTED:
                ins[1].actor.submitted(self, ins[1])
            elif kind == tm.ACTOR_ENQUEUE:
                ins[1].actor.enqueue(self, ins[1])
            elif kind == tm.ACTOR_TASK_DONE:
                ins[1].actor.task_finished(self, ins[1])
            elif kind == tm.ACTOR_TASK_FAILED:
                ins[1].actor.task_failed(self, ins[1], ins[2])
            elif kind == tm.ACTOR_ARG_LOST:
                ins[1].actor.creation_lost_argument(self, ins[1])
            elif kind == tm.ACTOR_LEASE:
                _, actor, grant, error = ins
                if grant is None:
                    actor.lease_failed(self, str(errors.EngineError(error)))
                else:
                    actor.lease_granted(self, *grant)
            elif kind == tm.KILL_ACTOR:
                actor = self.actor_by_creation.pop(ins[1], None)
                if actor is not None:
                    actor.handles_out_of_scope(self)  # killed once our calls to it have finished
            elif kind == tm.META_DONE:
                objects.task_meta_done(self, ins[1])
            elif kind == tm.DYNAMIC_END:
                objects.dynamic_end(self, *ins[1:])

    def _apply_ref_ops(self) -> None:
        """Applies queued count changes and released generators (lock held)."""
        if self.ref_ops:
            self.tm.apply_ref_ops(self.ref_ops)
            self.apply()
        while self.released_streams:
            self.tm.release_stream(*self.released_streams.pop())
            self.apply()

    # ---- tasks ----------------------------------------------------------------------------------
    def submit_task(self, entry: TaskEntry) -> list[ObjectRef]:
        """Registers and queues a task; returns refs to its results."""
        if self.failed_with is not None:
            self.check_local_node()
        guard = cancellation.current() if self.executor is not None else None
        if guard is not None:  # submitted by a running task: not interruptible meanwhile
            guard.children.append(entry.task_id)
            with guard.engine_call():
                return self._submit_task(entry)
        return self._submit_task(entry)

    def _submit_task(self, entry: TaskEntry) -> list[ObjectRef]:
        if self.tm.centralized:
            objects.task_meta_submit(self, entry)
        with self.lock:
            if self.ref_ops:
                self.tm.apply_ref_ops(self.ref_ops)
            self.tm.submit(entry)
            if callsites.ENABLED:
                self.callsites.record(entry.return_ids, callsites.caller(), self.tm.refs.refs)
            refs = [ObjectRef(rid, self.address, self.ref_ops) for rid in entry.return_ids]
            self.apply()
            return refs

    def push_to(self, entry: TaskEntry, address: str) -> None:
        """Sends a task to a worker; the function's code goes along the first time. Lock held."""
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

    def request_actor_lease(self, actor, resources: dict) -> None:
        self.tm.request_actor_lease(actor, resources)
        self.apply()

    def _fail_task(self, entry: TaskEntry, value) -> None:
        """Stores an error under every return id of the task (actor state calls this). Lock held."""
        self.tm.fail(entry, value)
        self.apply()

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool = True) -> None:
        """Cancels the task that creates `ref`; a ref owned by another process: its owner does."""
        task_id = ids.task_id_of(ref.id)
        if force:
            entry = self.tm.tasks.get(task_id)
            if entry is not None and entry.kind == tm.ACTOR_METHOD:
                raise ValueError("cancel(force=True) is not supported for actor tasks (Ray neither): "
                                 "use engine.kill() to end the actor")
        if ref.owner != self.address:
            self.transport.send(ref.owner, [pack([P.CANCEL_REQUEST, task_id, force, recursive])])
            return
        self._engine_call(CoreWorker.cancel_tasks, [task_id], force, recursive, False)

    def cancel_tasks(self, task_ids: list, force: bool, recursive: bool, locked: bool = True) -> None:
        """Cancels tasks this process owns (those still pending). Lock held unless `locked` False."""
        if not locked:
            with self.lock:
                self.cancel_tasks(task_ids, force, recursive)
            return
        for task_id in task_ids:
            self.tm.cancel(task_id, force, recursive)
        self.apply()

    # ---- objects (see objects.py) -----------------------------------------------------------------
    def _engine_call(self, fn, *args):
        """`fn(self, *args)`, from a running task not interruptible by a cancel meanwhile (its
        blocked get/wait is woken instead: cancellation.py)."""
        guard = cancellation.current() if self.executor is not None else None
        if guard is None:
            return fn(self, *args)
        with guard.engine_call():
            return fn(self, *args)

    def put(self, value) -> ObjectRef:
        self.check_local_node()
        return self._engine_call(objects.put, value)

    def get(self, refs: list, timeout: float | None):
        self.check_local_node()
        return self._engine_call(objects.get, refs, timeout)

    def wait(self, refs: list, num_returns: int, timeout: float | None,
             fetch_local: bool = False) -> tuple[list, list]:
        self.check_local_node()
        return self._engine_call(objects.wait, refs, num_returns, timeout, fetch_local)

    def on_ready(self, ref: ObjectRef, callback) -> None:
        objects.on_ready(self, ref, callback)

    def _write_shm(self, oid: bytes, frames: list, owner_address: str) -> int:
        return objects.write_shm(self, oid, frames, owner_address)

    def _materialize(self, oid: bytes, value, deadline: float | None = None, owner: str | None = None):
        return objects.materialize(self, oid, value, deadline, owner)

    # ---- shutdown and introspection ------------------------------------------------------------------
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
        self.log_printer.flush()
        if self._daemon_pidfd is not None and self._daemon_pidfd >= 0:
            os.close(self._daemon_pidfd)
            self._daemon_pidfd = -1
        self.arena.close()
        self.transport.close()

    def owns_anything(self) -> bool:
        """True while this process owns live objects, has pending tasks or is a link in a
        borrower tree (never reap it). Lock held: the daemon's REAP_QUERY is answered on the
        I/O thread."""
        self.tm.apply_ref_ops(self.ref_ops)
        self.apply()
        return self.tm.owns_anything()

    def history(self, key: bytes) -> list:
        """What happened to a task or object id: the task manager's recent transitions."""
        with self.lock:
            return self.tm.history(key)

    def stats(self) -> dict:
        with self.lock:
            self._apply_ref_ops()
            counters = self.tm.counters
            return {"refs": len(self.tm.refs.refs), "tasks": len(self.tm.tasks),
                    "leases": self.tm.submitter.num_leases(), "retries": counters["task_retries"],
                    "reconstructions": counters["reconstructions"], "handler_errors": self.handler_errors,
                    "lease_requests": counters["lease_requests"], "leases_returned": counters["leases_returned"],
                    "malformed": self.inbox.malformed, "unauthorized": self.inbox.unauthorized,
                    "puts_created_ahead": self.put_ahead.used, "puts_ahead_aborted": self.put_ahead.aborted}
