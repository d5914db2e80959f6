"""A TaskManager driven by hand: no processes, no sockets; instructions collected per step.

`Owner` wraps one task manager, applies nothing itself but records what it was told to do
(sends by message type, pushes, wakes), and checks `validate_state()` after every step.
"""

from __future__ import annotations

import collections

from ownrun.engine.ownership import task_manager as tm
from ownrun.engine.ownership.memory_store import ERROR, INLINE, SHM
from ownrun.engine.ownership.task_manager import NORMAL, TaskEntry, TaskManager
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
        self._ids = 0

    # ---- stepping ----------------------------------------------------------------------------
    def step(self, method: str, *args, **kwargs):
        result = getattr(self.tm, method)(*args, **kwargs)
        self.drain()
        self.tm.validate_state()
        return result

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

    def sent_of(self, kind: int) -> list:
        return [(addr, h) for addr, h in self.sent if h[0] == kind]

    # ---- tasks --------------------------------------------------------------------------------
    def task(self, name: str = "f", deps=(), num_returns: int = 1, retries: int = 3,
             retry_exceptions: bool = False) -> TaskEntry:
        self._ids += 1
        task_id = self._ids.to_bytes(16, "little")
        return TaskEntry(task_id=task_id, name=name, kind=NORMAL, fn_id=name, fn_blob=b"code",
                         arg_frames=[], positions=list(range(len(deps))),
                         deps=[[oid, OWNER] for oid in deps], nested=None,
                         return_ids=[task_id + i.to_bytes(4, "little") for i in range(1, num_returns + 1)],
                         retries_left=retries, retry_exceptions=retry_exceptions,
                         shape=(("CPU", 1.0),), resources={"CPU": 1.0})

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
