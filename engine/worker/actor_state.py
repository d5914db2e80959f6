"""A caller's view of one actor: where it lives and the calls it has in flight (§3).

Owns, per actor this process calls: the actor worker's address once known, method calls
waiting for it, calls in flight (for failure handling) and the reason it died. The
creator also owns the creation task and the actor's dedicated lease. Calls from one
caller are pushed over one connection, so they run in submission order.

Not thread-safe: used with the core worker's state lock held.
Failures: calls to a dead actor (killed, crashed, constructor failed, creator died) end
in `ActorDiedError` carrying the reason.
"""

from __future__ import annotations

from collections import deque

from .. import errors
from ..ownership.task_manager import ACTOR_CREATION, PUSHED, error_value
from ..rpc import protocol as P
from ..rpc.transport import pack
from . import serialization


class ActorState:
    def __init__(self, actor_id: bytes, name: str | None, class_name: str, owned: bool,
                 address: str | None = None, worker_id: bytes | None = None):
        self.actor_id = actor_id
        self.name = name
        self.class_name = class_name
        self.owned = owned
        self.address = address
        self.worker_id = worker_id
        self.node_id = None
        self.daemon: str | None = None  # daemon of the actor's node (its lease)
        self.pending: deque = deque()
        self.in_flight: dict = {}
        self.dead_reason: str | None = None
        self.creation = None  # TaskEntry, on the creator only
        self.resources: dict = {}
        self.lookup_started = False

    # ---- submission --------------------------------------------------------------------
    def enqueue(self, core, entry) -> None:
        if entry.kind == ACTOR_CREATION:
            self.creation = entry
            core.request_actor_lease(self, entry.resources)
            return
        if self.dead_reason is not None:
            self._fail(core, entry)
            return
        if self.address is None:
            self.pending.append(entry)
            if not self.owned and not self.lookup_started:
                self.lookup_started = True
                core.call_async(core.head_address, P.ACTOR_LOOKUP, self.actor_id,
                                callback=lambda ok, view: self._looked_up(core, ok, view))
            return
        self._push(core, entry)

    def _push(self, core, entry) -> None:
        entry.state = PUSHED
        entry.worker_id = self.worker_id
        self.in_flight[entry.task_id] = entry
        core.push_to(entry, self.address)

    def _looked_up(self, core, ok: bool, view) -> None:
        if not ok or view is None:
            self.died(core, "the actor is not known to the cluster (its creator may have died)")
        elif view["state"] == "DEAD":
            self.died(core, view["reason"] or "the actor died")
        else:
            self.address, self.worker_id = view["address"], view["worker_id"]
            self._flush(core)

    def _flush(self, core) -> None:
        while self.pending:
            self._push(core, self.pending.popleft())

    # ---- creator side ------------------------------------------------------------------------
    def lease_granted(self, core, worker_id: bytes, address: str, node_id: str, daemon: str) -> None:
        self.worker_id, self.address, self.node_id, self.daemon = worker_id, address, node_id, daemon
        if self.dead_reason is not None:  # killed before it started
            core.transport.send(daemon, [pack([P.KILL_WORKER, worker_id, self.dead_reason])])
            return
        creation = self.creation
        creation.state = PUSHED
        creation.worker_id = worker_id
        core.push_to(creation, address)
        self._flush(core)

    def lease_failed(self, core, reason: str) -> None:
        self.died(core, reason)
        if self.creation is not None:
            exc = errors.ActorDiedError(f"actor {self.class_name} could not be created: {reason}")
            core._fail_task(self.creation, error_value(serialization.serialize(exc)[0]))

    def task_finished(self, core, entry) -> None:
        self.in_flight.pop(entry.task_id, None)

    # ---- death ------------------------------------------------------------------------------
    def died(self, core, reason: str) -> None:
        if self.dead_reason is not None:
            return
        self.dead_reason = reason
        if self.owned:
            core.transport.send(core.head_address, [pack([P.ACTOR_UPDATE, self.actor_id, "DEAD", None,
                                                          reason, None])])
        entries = list(self.in_flight.values()) + list(self.pending)
        self.in_flight.clear()
        self.pending.clear()
        if self.creation is not None and self.creation.task_id in core.tasks:
            entries.append(self.creation)
        for entry in entries:
            self._fail(core, entry)

    def _fail(self, core, entry) -> None:
        exc = errors.ActorDiedError(f"actor {self.class_name} ({self.actor_id.hex()[:12]}) died: "
                                    f"{self.dead_reason}")
        core._fail_task(entry, error_value(serialization.serialize(exc)[0]))

    def kill(self, core, reason: str = "killed by engine.kill()") -> None:
        """Kills the actor's process; calls from here fail at once, not when the kill lands."""
        if self.worker_id is not None and self.dead_reason is None:
            core.transport.send(self.daemon or core.daemon_address,
                                [pack([P.KILL_WORKER, self.worker_id, reason])])
        self.died(core, reason)
