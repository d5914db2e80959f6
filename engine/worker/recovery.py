"""Recovery from node and owner failures at the owner and its borrowers (DESIGN.md §5).

Owns what a core worker does when processes die: a node's death (retry the tasks that ran
there, fail refs owned by processes that died with it, restart or fail actors placed there,
rebuild lost objects from lineage), lineage reconstruction itself (recursively, for lost
arguments), re-running a task whose argument could not be fetched, borrowers re-asking
owners for rebuilt objects, and fate-sharing of refs whose owner died.

A mixin of `CoreWorker`: methods run with the core worker's state lock held unless they
say otherwise. Failures end in a stored error value (ObjectLostError,
ObjectReconstructionFailedError, OwnerDiedError) that `get` raises, never a hang.
"""

from __future__ import annotations

import time

from .. import errors
from ..object_ref import ObjectRef
from ..ownership.reference_counter import Release
from ..ownership.task_manager import WAITING_DEPS, TaskEntry, error_value
from ..rpc import protocol as P
from . import serialization


class RecoveryMixin:
    # ---- node failures and lineage reconstruction (DESIGN.md §5) -------------------------------
    def _on_node_died(self, h, frames) -> None:
        """A node died: retry its tasks, fail its owners' refs and actors, rebuild lost objects."""
        _, node_id, daemon, client_addrs, reason = h
        if daemon in self.dead_daemons:
            return
        self.dead_daemons.add(daemon)
        self._node_death.set()
        why = f"node {node_id} died ({reason})"
        self.transport.disconnect(daemon)
        out = Release()
        for addr in client_addrs:
            self.dead_processes.add(addr)
            self.refs.process_died(addr, out)
            self._fail_objects_of_dead_owner(addr, why)
            self._fn_sent.pop(addr, None)
        if out:
            self._carry_out(out)
        for lease in [le for le in self.submitter.leases_by_worker.values() if le.daemon == daemon]:
            for entry in self.submitter.worker_died(lease.worker_id):
                self._retry_or_fail(entry, why)
        for queue in self.submitter.queues.values():
            if queue.daemon == daemon:  # its arguments' node is gone: ask our own daemon
                queue.daemon = None
        for request_id, asked in list(self._lease_daemons.items()):
            if asked == daemon:  # that request will never be answered: ask elsewhere
                self._lease_daemons.pop(request_id, None)
                actor = self._actor_lease_requests.pop(request_id, None)
                if actor is not None:
                    self.request_actor_lease(actor, actor.resources)
                    continue
                shape = self.submitter.request_shapes.pop(request_id, None)
                queue = self.submitter.queues.get(shape)
                if queue is not None:
                    queue.lease_requests.discard(request_id)
                    self.submitter.dispatch(queue)
        for actor in list(self.actors.values()):
            if actor.daemon == daemon or actor.address in client_addrs:
                actor.worker_died(self, why)
        lost = [ref for ref in self.refs.refs.values()
                if ref.owned and ref.value is not None and ref.value[0] == P.VALUE_SHM and ref.value[1] == daemon]
        for ref in lost:
            ref.value = None
            if not ref.freed:
                self._recover(ref, why)
        waiting, self._waiting_for_node_death = self._waiting_for_node_death, []
        for entry in waiting:
            self._rerun_after_lost_argument(entry)

    def _recover(self, ref, why: str) -> None:
        """Rebuilds a lost object we own. Lock held.

        1. Owned and missing? (the caller checked.)  2. Its creating task still pending? Done.
        3. No lineage (a put object, or lineage released)? Store ObjectLostError.
        4. Else resubmit the creating task, first recursively rebuilding its lost arguments.
        """
        task = ref.task
        if task is None:
            exc = errors.ObjectLostError(
                f"object {ref.oid.hex()} owned by {self.address} is lost ({why}) and cannot be rebuilt: "
                f"it was created by put() or its lineage was released")
            self._store_value(ref.oid, error_value(serialization.serialize(exc)[0]), None, None)
            return
        if task.task_id in self.tasks:
            return  # already being rebuilt
        if task.retries_left == 0:
            exc = errors.ObjectReconstructionFailedError(
                f"object {ref.oid.hex()} owned by {self.address} is lost ({why}) and its task "
                f"{task.name} has no retries left to rebuild it")
            self._store_value(ref.oid, error_value(serialization.serialize(exc)[0]), None, None)
            return
        if task.retries_left > 0:
            task.retries_left -= 1
        self.counters["reconstructions"] += 1
        for rid in task.return_ids:  # rebuild every lost return of the task
            other = self.refs.refs.get(rid)
            if other is not None and other.value is not None and other.value[0] == P.VALUE_SHM \
                    and other.value[1] in self.dead_daemons:
                other.value = None
        self._resubmit(task, why)

    def _resubmit(self, entry: TaskEntry, why: str) -> None:
        """Runs `entry` again, rebuilding lost arguments first. Lock held.

        A retried task still holds its argument counts; they are released only after the new
        ones are taken, so a lost argument's record (and its lineage) survives the handover.
        """
        old = entry.submitted_refs
        submitted = entry.deps + entry.nested if entry.nested else list(entry.deps)
        entry.submitted_refs = submitted
        if submitted:
            self.refs.add_submitted(submitted)
        if old:
            out = Release()
            self.refs.remove_submitted(old, out)
            if out:
                self._carry_out(out)
        table = self.refs.refs
        for oid, _owner in entry.deps:
            dep = table.get(oid)
            if dep is not None and dep.owned and (dep.value is None or (
                    dep.value[0] == P.VALUE_SHM and dep.value[1] in self.dead_daemons)):
                dep.value = None
                self._recover(dep, why)
        entry.state = WAITING_DEPS
        entry.worker_id = None
        entry.dep_meta = entry.dep_frames = None
        self.tasks[entry.task_id] = entry
        self._resolve(entry)

    def _rerun_after_lost_argument(self, entry: TaskEntry) -> None:
        """A worker could not fetch an argument. Lock held.

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
            if value is not None and value[0] == P.VALUE_ERROR:
                self._fail_task(entry, value)
                return
            current.append(None if value is None or value[0] != P.VALUE_SHM or value[1] in self.dead_daemons
                           else value[1])
        used = [m[5] if m[0] == P.VALUE_SHM else None for m in entry.dep_meta or ()]
        if None not in current and current == used:
            self.tasks[entry.task_id] = entry
            self._waiting_for_node_death.append(entry)  # the node's death notice is on its way
            return
        self.counters["task_retries"] += 1
        self._resubmit(entry, "an argument's node died")

    def _fail_objects_of_dead_owner(self, owner: str, reason: str) -> None:
        """Fate-sharing: objects owned by a dead process fail with OwnerDiedError. Lock held."""
        for ref in list(self.refs.refs.values()):
            if ref.owner == owner and not ref.owned and ref.value is None:
                exc = errors.OwnerDiedError(f"object {ref.oid.hex()} is lost: its owner {owner} died "
                                            f"({reason})")
                self._store_value(ref.oid, error_value(serialization.serialize(exc)[0]), None, None)

    def _get_rebuilt(self, r: ObjectRef, lost_value: tuple, deadline):
        """The shared-memory copy of `r` is gone: wait for its owner to rebuild it, then read it.

        An owner rebuilds from lineage once it knows the copy's node died; a borrower asks the
        owner again (the owner answers when the object is rebuilt)."""
        limit = time.monotonic() + float(self.config.get("node_death_timeout", 1.0)) + 5.0
        lost_at = lost_value[1]
        while True:
            with self.lock:
                ref = self.refs.refs.get(r.id)
                if ref is None:
                    raise errors.ObjectLostError(f"object {r.id.hex()} is gone")
                current = ref.value
                if current is not None and current[0] == P.VALUE_SHM and current[1] == lost_at:
                    if ref.owned and lost_at in self.dead_daemons:
                        ref.value = current = None
                        self._recover(ref, f"its node's daemon {lost_at} died")
                    elif not ref.owned:
                        ref.value = current = None
                        ref.size = 0  # ask the owner again
            if current is None or current[0] != P.VALUE_SHM or current[1] != lost_at:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                value = self.get([r], remaining)[0]
                return value
            if time.monotonic() > limit:
                raise errors.ObjectLostError(f"object {r.id.hex()} is lost: its copy on {lost_at} "
                                             f"cannot be read and no node failure explains it")
            self._node_death.wait(0.05)
            self._node_death.clear()

