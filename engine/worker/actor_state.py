"""A caller's view of one actor: where it lives and the calls it has in flight (§3).

Owns, per actor this process calls: the actor worker's address once known, method calls
waiting for it, calls in flight (for failure handling) and the reason it died. The
creator also owns the creation task and the actor's dedicated lease. Calls from one
caller are pushed over one connection, so they run in submission order.

Not thread-safe: used with the core worker's state lock held.
Restarts (§5): when the actor's process dies and `max_restarts` allows, its creator asks for
a new lease and re-runs the constructor; every caller then looks the new address up at the
head. Calls in flight when it died are resubmitted while `max_task_retries` allows.
Failures: calls to a dead actor (killed, crashed, constructor failed, creator died, restarts
used up) end in `ActorDiedError` carrying the reason.
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
                 address: str | None = None, worker_id: bytes | None = None,
                 max_restarts: int = 0, max_task_retries: int = 0):
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
        self.restarts_left = max_restarts  # -1: unlimited
        self.max_task_retries = max_task_retries
        self.killed = False
        self.restarts = 0

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
        self.lookup_started = False
        if self.dead_reason is not None:
            return
        if not ok or view is None:
            self.died(core, "the actor is not known to the cluster (its creator may have died)")
        elif view["state"] == "DEAD":
            self.died(core, view["reason"] or "the actor died")
        else:
            self.address, self.worker_id = view["address"], view["worker_id"]
            self._flush(core)

    def subscribe(self, core) -> None:
        """Asks the head for the actor's state (and to be told of changes). Non-blocking."""
        if not self.lookup_started:
            self.lookup_started = True
            core.call_async(core.head_address, P.ACTOR_LOOKUP, self.actor_id,
                            callback=lambda ok, view: self._verified(core, ok, view))

    def _verified(self, core, ok: bool, view) -> None:
        self.lookup_started = False
        if ok and view is not None:
            self.on_head_update(core, view)

    def on_head_update(self, core, view: dict) -> None:
        """The head's word on the actor (from a lookup or a published change)."""
        if self.owned or self.dead_reason is not None:
            return  # the creator drives restarts itself
        state, worker_id = view["state"], view["worker_id"]
        if state == "DEAD":
            self.died(core, view["reason"] or "the actor died")
        elif worker_id == self.worker_id and self.worker_id is not None and state != "ALIVE":
            self.worker_died(core, view["reason"] or "its process died")
        elif state == "ALIVE" and worker_id != self.worker_id:
            if self.worker_id is not None:  # the worker we were using died and was replaced
                self.worker_died(core, view["reason"] or "its process died")
                if self.dead_reason is not None:
                    return
            self.address, self.worker_id = view["address"], worker_id
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
    def worker_died(self, core, reason: str) -> None:
        """The actor's process died: restart it (creator), wait for it (callers), or give up."""
        if self.dead_reason is not None:
            return
        if self.killed or self.restarts_left == 0 or reason.startswith("killed by engine.kill()"):
            self.died(core, reason)
            return
        dead_worker = self.worker_id
        self.address = self.worker_id = None
        retry, fail = [], []
        for entry in self.in_flight.values():
            if entry.retries_left != 0:
                if entry.retries_left > 0:
                    entry.retries_left -= 1
                retry.append(entry)
            else:
                fail.append(entry)
        self.in_flight.clear()
        self.pending.extendleft(reversed(retry))
        for entry in fail:
            self._fail(core, entry, f"it died ({reason}) while running this call, which has no retries left "
                                    f"(max_task_retries={self.max_task_retries})")
        if self.owned:
            if self.restarts_left > 0:
                self.restarts_left -= 1
            self.restarts += 1
            core.transport.send(core.head_address, [pack([P.ACTOR_UPDATE, self.actor_id, "RESTARTING", None,
                                                          reason, None])])
            core.request_actor_lease(self, self.resources)
        elif not self.lookup_started:
            self.lookup_started = True
            core.call_async(core.head_address, P.ACTOR_LOOKUP, self.actor_id, dead_worker,
                            callback=lambda ok, view: self._looked_up(core, ok, view))

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
        if self.owned and self.creation is not None and self.creation.submitted_refs:
            core._task_done(self.creation)  # the constructor's arguments are not needed any more
        if self.creation is not None and self.creation.task_id in core.tasks:
            entries.append(self.creation)
        for entry in entries:
            self._fail(core, entry)

    def _fail(self, core, entry, why: str | None = None) -> None:
        exc = errors.ActorDiedError(f"actor {self.class_name} ({self.actor_id.hex()[:12]}) died: "
                                    f"{why or self.dead_reason}")
        core._fail_task(entry, error_value(serialization.serialize(exc)[0]))

    def kill(self, core, reason: str = "killed by engine.kill()") -> None:
        """Kills the actor's process; calls from here fail at once, not when the kill lands."""
        self.killed = True
        if self.worker_id is not None and self.dead_reason is None:
            core.transport.send(self.daemon or core.daemon_address,
                                [pack([P.KILL_WORKER, self.worker_id, reason])])
        self.died(core, reason)
