"""A TaskManager driven by hand: no processes, no sockets; instructions collected per step.

`Owner` wraps one task manager, applies nothing itself but records what it was told to do
(sends by message type, pushes, wakes), and checks `validate_state()` after every step.
`Actor` is an actor this owner created: its pure `ActorSubmitter`, fed the task manager's
actor instructions, with its own instructions applied as `worker/actor_state.py` does
(pushes and kills recorded); both machines are validated after every step.
"""

from __future__ import annotations

import collections

from ownrun.engine import errors
from ownrun.engine.ownership import actor_submitter as S
from ownrun.engine.ownership import task_manager as tm
from ownrun.engine.ownership.memory_store import ERROR, INLINE, SHM, error_of
from ownrun.engine.ownership.task_manager import (
    ACTOR_CREATION,
    ACTOR_METHOD,
    NORMAL,
    TaskEntry,
    TaskManager,
)
from ownrun.engine.rpc import protocol as P
from ownrun.engine.worker import serialization

OWNER = "tcp://owner"
DAEMON = "tcp://daemon0"
NODE = "node0"


class Owner:
    def __init__(self, max_in_flight: int = 2):
        self.tm = TaskManager(OWNER, DAEMON, b"owner-id", max_in_flight=max_in_flight)
        self.sent: list[tuple[str, list]] = []  # (address, header)
        self.pushed: list[tuple[bytes, str]] = []  # (task_id, worker address)
        self.woken: list = []
        self.nudged: list = []  # get/wait waiters told their borrowed object is pending at its owner
        self.lease_requests: list[int] = []
        self.actors: list[Actor] = []
        self._ids = 0

    # ---- stepping ----------------------------------------------------------------------------
    def step(self, method: str, *args, **kwargs):
        result = getattr(self.tm, method)(*args, **kwargs)
        self.drain()
        self.validate()
        return result

    def validate(self) -> None:
        self.tm.validate_state()
        for actor in self.actors:
            actor.machine.validate_state()

    def drain(self) -> None:
        out = self.tm.out
        while out:
            ins = out.popleft()
            if ins[0] == tm.SEND:
                self.sent.append((ins[1], ins[2]))
                if ins[2][0] == P.LEASE_REQUEST:
                    self.lease_requests.append(ins[2][3])
            elif ins[0] == tm.PUSH:
                self.pushed.append((ins[1].task_id, ins[2]))
            elif ins[0] == tm.WAKE:
                self.woken.append(ins[1])
            elif ins[0] == tm.NUDGE:
                self.nudged.append(ins[1])
            elif ins[0] == tm.ACTOR_LEASE:
                _, actor, grant, error = ins
                actor.run(actor.machine.lease_granted(*grant) if grant else actor.machine.lease_failed(error))
            elif ins[0] in _ACTOR_EVENTS and ins[1].actor is not None:  # else: an actor task alone
                entry = ins[1]
                entry.actor.run(_ACTOR_EVENTS[ins[0]](entry.actor.machine, entry, *ins[2:]))

    def sent_of(self, kind: int) -> list:
        return [(addr, h) for addr, h in self.sent if h[0] == kind]

    # ---- tasks --------------------------------------------------------------------------------
    def task(self, name: str = "f", deps=(), num_returns: int = 1, retries: int = 3,
             retry_exceptions: bool = False, kind: int = NORMAL, actor=None, dep_owner: str = OWNER) -> TaskEntry:
        self._ids += 1
        task_id = self._ids.to_bytes(16, "little")
        return TaskEntry(task_id=task_id, name=name, kind=kind, fn_id=name, fn_blob=b"code",
                         arg_frames=[], positions=list(range(len(deps))),
                         deps=[[oid, dep_owner] for oid in deps], nested=None,
                         return_ids=[task_id + i.to_bytes(4, "little") for i in range(1, num_returns + 1)],
                         retries_left=retries, retry_exceptions=retry_exceptions,
                         shape=(("CPU", 1.0),), resources={"CPU": 1.0}, actor=actor)

    def create_actor(self, deps=(), max_restarts: int = -1, dep_owner: str = OWNER) -> tuple[Actor, TaskEntry]:
        """`A.remote(*deps)`: the actor and its creation task (submitted)."""
        actor = Actor(self, max_restarts)
        self.actors.append(actor)
        creation = self.submit(self.task("init", deps, retries=0, kind=ACTOR_CREATION, actor=actor,
                                         dep_owner=dep_owner))
        actor.creation = creation
        return actor, creation

    def call(self, actor: Actor, name: str, retries: int = -1) -> TaskEntry:
        """`actor.name.remote()` with no arguments."""
        return self.submit(self.task(name, retries=retries, kind=ACTOR_METHOD, actor=actor))

    def submit(self, entry: TaskEntry) -> TaskEntry:
        self.step("submit", entry)
        return entry

    def grant(self, worker: str = "tcp://w1", daemon: str = DAEMON, node: str = NODE) -> None:
        request_id = self.lease_requests.pop(0)
        self.step("lease_granted", request_id, worker.encode(), worker, node, daemon, None, 0.0)

    def reply_inline(self, entry: TaskEntry, value, worker: str = "tcp://w1") -> None:
        frames, _ = serialization.serialize(value)
        returns = [[INLINE, len(frames), None]] * len(entry.return_ids)
        self.step("task_reply", worker, entry.task_id, returns, None, worker.encode(), 0.01,
                  [b"header", *frames * len(entry.return_ids)], 1.0)

    def reply_shm(self, entry: TaskEntry, worker: str = "tcp://w1", node: str = NODE,
                  daemon: str = DAEMON, size: int = 1 << 20) -> None:
        returns = [[SHM, node, size, None, daemon]] * len(entry.return_ids)
        self.step("task_reply", worker, entry.task_id, returns, None, worker.encode(), 0.01, [b"header"], 1.0)

    def reply_arg_lost(self, entry: TaskEntry, worker: str = "tcp://w1") -> None:
        """The worker could not fetch a shared-memory argument (ArgumentLostError)."""
        frames, _ = serialization.serialize(errors.ObjectLostError("its node died"))
        returns = [[ERROR, len(frames), None, "arg_lost"]] * len(entry.return_ids)
        self.step("task_reply", worker, entry.task_id, returns, None, worker.encode(), 0.01,
                  [b"header", *frames * len(entry.return_ids)], 1.0)

    def reply_error(self, entry: TaskEntry, exc: BaseException, worker: str = "tcp://w1") -> None:
        frames, _ = serialization.serialize(exc)
        returns = [[ERROR, len(frames), None]] * len(entry.return_ids)
        self.step("task_reply", worker, entry.task_id, returns, None, worker.encode(), 0.01,
                  [b"header", *frames * len(entry.return_ids)], 1.0)

    def drop(self, oid: bytes) -> None:
        """The user drops their ObjectRef to `oid`."""
        self.step("apply_ref_ops", collections.deque([(oid, OWNER, -1)]))

    # ---- values --------------------------------------------------------------------------------
    def ref(self, oid: bytes):
        return self.tm.refs.refs.get(oid)

    def value_of(self, oid: bytes):
        ref = self.ref(oid)
        value = ref.value if ref is not None else None
        if value is None:
            return None
        if value.kind == SHM:
            return ("shm", value.node_id)
        obj = serialization.deserialize(value.frames)
        return ("error", obj) if value.kind == ERROR else obj


class Actor:
    """An actor the owner created: the pure submitter, and what the shell does with its
    instructions (worker/actor_state.py), with pushes and kills recorded."""

    actor_id = b"A" * 16

    def __init__(self, owner: Owner, max_restarts: int):
        self.owner = owner
        self.machine = S.ActorSubmitter(self.actor_id, "Counter", True, max_restarts, -1)
        self.resources: dict = {}  # of its lease request (the task manager sets it)
        self.creation: TaskEntry | None = None
        self.pushed: list[tuple[str, bytes]] = []  # (task name, worker id)
        self.killed: list[tuple[bytes, str]] = []  # (worker id, reason)

    @property
    def restarts_left(self) -> int:
        return self.machine.restarts_left

    def lease_options(self) -> None:
        return None

    def step(self, event: str, *args) -> None:
        """An event the shell feeds the machine itself (a worker's death)."""
        self.run(getattr(self.machine, event)(*args))
        self.owner.drain()
        self.owner.validate()

    def run(self, instructions) -> None:
        tmgr = self.owner.tm
        for ins in instructions:
            if type(ins) is S.PushTask:
                ins.entry.state, ins.entry.worker_id = tm.PUSHED, ins.worker_id
                self.pushed.append((ins.entry.name, ins.worker_id))
            elif type(ins) is S.RequestLease:
                tmgr.request_actor_lease(self, ins.resources)
            elif type(ins) is S.ResolveCreation:
                tmgr.rerun_creation(ins.entry, ins.reason)
            elif type(ins) is S.ReleaseCreationArgs:
                tmgr.end_creation(ins.entry)
            elif type(ins) is S.FailTask:
                tmgr.fail(ins.entry, error_of(errors.ActorDiedError(ins.message)))
            elif type(ins) is S.KillWorker:
                self.killed.append((ins.worker_id, ins.reason))


def _task_failed(machine, entry, value):
    if entry.kind == ACTOR_CREATION:
        return machine.creation_failed("an argument of its constructor failed")
    return machine.call_failed(entry.task_id)


_ACTOR_EVENTS = {
    tm.ACTOR_SUBMITTED: lambda m, e: m.submit_call(e) if e.kind != ACTOR_CREATION else [],
    tm.ACTOR_ENQUEUE: lambda m, e: m.creation_submitted(e) if e.kind == ACTOR_CREATION else m.call_resolved(e),
    tm.ACTOR_TASK_DONE: lambda m, e: m.call_finished(e.task_id),
    tm.ACTOR_TASK_FAILED: _task_failed,
    tm.ACTOR_ARG_LOST: lambda m, e: m.creation_lost_argument(),
}
