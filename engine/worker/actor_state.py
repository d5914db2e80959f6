"""The shell around one actor's submitter: feeds it events, carries out its instructions (§3).

The logic (ordering, restarts, death, the handle-scope rule) is the pure
`ownership.actor_submitter.ActorSubmitter`; this module only turns the core worker's calls
into its events and its instructions into I/O: pushes, lease requests, ACTOR_UPDATE and
ACTOR_LOOKUP to the head, KILL_WORKER to a daemon, ActorDiedError values stored under a
failed call's return ids, the creation handed back to the task manager (resolved again for
a restart, dropped when the actor is dead).

Not thread-safe: used with the core worker's state lock held (lookup answers arrive on the
I/O thread, which holds it). Instructions are applied in the order their events happened:
an event raised while another's instructions are being applied (storing an error can free
the last handle) queues its instructions behind the current ones.
"""

from __future__ import annotations

from collections import deque

from .. import errors
from ..ownership import actor_submitter as S
from ..ownership.task_manager import ACTOR_CREATION, PUSHED, error_value
from ..rpc import protocol as P
from ..rpc.transport import pack
from . import serialization

_PushTask = S.PushTask  # the hot path's instruction, without a module lookup per call

class ActorState:
    """This process's handle-side state of one actor: the submitter and how to reach it."""

    def __init__(self, actor_id: bytes, name: str | None, class_name: str, owned: bool,
                 address: str | None = None, worker_id: bytes | None = None,
                 max_restarts: int = 0, max_task_retries: int = 0, detached: bool = False,
                 placement: dict | None = None, key: bytes | None = None):
        self.actor_id = actor_id
        self.key = key  # the creator's proof of its reports to the head (rpc/notices.py)
        self.detached = detached  # lifetime="detached": its worker outlives its creator
        self.placement = placement  # needed on a node to place the actor there, not held
        self.target: list | None = None  # [daemon, pinned, soft] of its scheduling_strategy, if any
        self.name = name
        self.class_name = class_name
        self.owned = owned
        self.resources: dict = {}  # of the actor's lease (set when it is requested)
        self.machine = S.ActorSubmitter(actor_id, class_name, owned, max_restarts, max_task_retries,
                                        address, worker_id)
        self._applying = False
        self._backlog: deque = deque()

    # ---- what the rest of the core worker reads ---------------------------------------------------
    @property
    def address(self) -> str | None:
        return self.machine.address

    @property
    def worker_id(self) -> bytes | None:
        return self.machine.worker_id

    @property
    def daemon(self) -> str | None:
        return self.machine.daemon

    @property
    def restarts_left(self) -> int:
        return self.machine.restarts_left

    @property
    def max_task_retries(self) -> int:
        return self.machine.max_task_retries

    @property
    def dead_reason(self) -> str | None:
        return self.machine.dead_reason

    def history(self) -> list:
        return self.machine.history()

    def handle_address(self) -> tuple[str | None, bytes | None]:
        """(address, worker id) a handle sent to another process carries: none while our
        constructor runs there (it may yet fail to fetch an argument and the worker be
        replaced), so the receiver asks the head, which answers once the actor is up."""
        machine = self.machine
        if machine.starting:
            return None, None
        return machine.address, machine.worker_id

    def lease_options(self) -> dict | None:
        """What the actor's lease request says beyond its resources (LEASE_REQUEST)."""
        pinned = self.target is not None and self.target[1]
        soft = self.target is not None and len(self.target) > 2 and self.target[2]
        if not self.detached and not self.placement and not pinned and not soft:
            return None
        options = {"detached": self.detached, "placement": self.placement or {}, "pinned": pinned}
        if soft:
            options["soft_affinity"] = True
        return options

    # ---- events ---------------------------------------------------------------------------------
    def submitted(self, core, entry) -> None:
        """A method call was submitted; its arguments may still be pending."""
        if entry.kind != ACTOR_CREATION:
            out = self.machine.submit_call(entry)
            if out:
                self._run(core, out)

    def enqueue(self, core, entry) -> None:
        """The task's arguments are resolved."""
        if entry.kind == ACTOR_CREATION:
            self._run(core, self.machine.creation_submitted(entry))
            return
        out = self.machine.call_resolved(entry)
        if out:
            self._run(core, out)

    def task_finished(self, core, entry) -> None:
        out = self.machine.call_finished(entry.task_id)
        if out:
            self._run(core, out)

    def task_failed(self, core, entry, value) -> None:
        """The task ended here without a reply, `value` (an error) stored as its result; a
        no-op for a task the submitter failed itself."""
        if entry.kind != ACTOR_CREATION:
            self._run(core, self.machine.call_failed(entry.task_id))
        else:
            self._run(core, self.machine.creation_failed(_constructor_failure(value)))

    def creation_lost_argument(self, core, entry) -> None:
        """The constructor could not fetch an argument; the task manager resolves it again."""
        self._run(core, self.machine.creation_lost_argument())

    def lease_granted(self, core, worker_id: bytes, address: str, node_id: str, daemon: str) -> None:
        self._run(core, self.machine.lease_granted(worker_id, address, node_id, daemon))

    def lease_failed(self, core, reason: str) -> None:
        self._run(core, self.machine.lease_failed(reason))

    def worker_died(self, core, reason: str) -> None:
        """The process we use for the actor died (or its node did)."""
        self._run(core, self.machine.worker_died(None, reason))

    def on_head_update(self, core, view: dict) -> None:
        self._run(core, self.machine.head_update(view))

    def subscribe(self, core) -> None:
        """Asks the head for the actor's state (and to be told of changes). Non-blocking."""
        self._run(core, self.machine.subscribe())

    def kill(self, core, reason: str = S.KILLED) -> None:
        """Kills the actor's process; calls from here fail at once, not when the kill lands."""
        self._run(core, self.machine.kill(reason))

    def kill_to_restart(self, core) -> None:
        self._run(core, self.machine.kill_to_restart())

    def handles_out_of_scope(self, core) -> None:
        self._run(core, self.machine.handles_out_of_scope())

    # ---- instructions -------------------------------------------------------------------------------
    def _run(self, core, instructions: list) -> None:
        if not instructions:
            return
        if self._applying:
            self._backlog.extend(instructions)
            return
        self._applying = True
        try:
            for instruction in instructions:
                self._apply(core, instruction)
            backlog = self._backlog
            while backlog:
                self._apply(core, backlog.popleft())
        finally:
            self._applying = False

    def _apply(self, core, instruction) -> None:
        kind = type(instruction)
        if kind is _PushTask:
            entry = instruction.entry
            entry.state = PUSHED
            entry.worker_id = instruction.worker_id
            core.push_to(entry, instruction.address)
        elif kind is S.FailTask:
            exc = errors.ActorDiedError(instruction.message)
            core._fail_task(instruction.entry, error_value(serialization.serialize(exc)[0]))
        elif kind is S.RequestLease:
            core.request_actor_lease(self, instruction.resources)
        elif kind is S.ReportToHead:
            core.transport.send(core.head_address, [pack([P.ACTOR_UPDATE, self.actor_id, instruction.state,
                                                          None, instruction.reason, None, self.key])])
        elif kind is S.LookUp:
            core.call_async(core.head_address, P.ACTOR_LOOKUP, self.actor_id, instruction.not_worker_id, None,
                            core.notice_token,
                            callback=lambda ok, view: self._run(core, self.machine.lookup_answered(ok, view)))
        elif kind is S.KillWorker:
            core.transport.send(instruction.daemon or core.daemon_address,
                                [pack([P.KILL_WORKER, instruction.worker_id, instruction.reason, core.address])])
        elif kind is S.ResolveCreation:
            core.tm.rerun_creation(instruction.entry, instruction.reason)
            core.apply()
        elif kind is S.ReleaseCreationArgs:
            core.tm.end_creation(instruction.entry)
            core.apply()
        else:
            raise AssertionError(f"unknown actor instruction {instruction!r}")


def _constructor_failure(value) -> str:
    """Why the constructor never ran, from the error stored as the creation task's result."""
    try:
        exc = serialization.deserialize(value.frames)
    except Exception as err:  # noqa: BLE001 - the error itself cannot be read here
        return f"an argument of its constructor failed ({type(err).__name__} reading the error)"
    if isinstance(exc, errors.TaskError) and exc.cause is not None:
        exc = exc.cause
    return f"an argument of its constructor failed: {type(exc).__name__}: {exc}"
