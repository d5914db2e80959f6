"""Recovery of lost objects at their owner: Ray's RecoverObject, as a planner (DESIGN.md §5).

Owns the decision of what to do when an object this process owns has lost its value (its
node died, or it was freed and a re-running task needs it again):

  1. Owned and lost? Borrowed objects are the owner's business; an object whose creating
     task is still pending will get its value from that task.
  2. Another live copy (a secondary copy another node pulled)? Pin it: it becomes the value.
  3. Else resubmit the task that created it (its lineage), if it has retries left and was
     not cancelled (`engine.cancel` of a finished task: as in Ray, it is not re-run).
  4. Recurse into that task's arguments: lost ones are planned first, so they are being
     rebuilt by the time the task resolves its arguments again.
When none of this works the object gets an error naming the real cause: created by
`put()` (no lineage), returned by an actor task (actors are not re-run for this), lineage
not kept (over the lineage budget), or its task has no retries left or was cancelled.

`plan` returns actions — `(PIN, ref, daemon, node_id)`, `(RESUBMIT, task)`,
`(LOST, ref, exception)` — that the task manager applies; it changes no state itself.

Pure: no sockets, threads or clocks. Not thread-safe: used with the core worker's lock held.
"""

from __future__ import annotations

from .. import errors
from .reference_counter import ACTOR_TASK, OVER_BUDGET, PUT, STREAMED

PIN, RESUBMIT, LOST = 0, 1, 2

_NO_LINEAGE = {
    PUT: "it was created by put(), which has no lineage to rebuild it from",
    ACTOR_TASK: "it was returned by an actor task, and actor tasks are not re-run to rebuild objects",
    STREAMED: "it was yielded by a streaming generator task, which is not re-run to rebuild one item",
    OVER_BUDGET: "its lineage was not kept: the owner's lineage budget (max_lineage_bytes) was used up",
}


def is_lost(ref, dead_daemons: set) -> bool:
    """`ref` has no usable value: none, or its shared-memory copy died with its node."""
    value = ref.value
    return value is None or (value.kind == 1 and value.daemon in dead_daemons)  # 1: SHM


class RecoveryPlanner:
    def __init__(self, refs, tasks: dict, dead_daemons: set):
        self.refs = refs  # ReferenceCounter
        self.tasks = tasks  # task id -> TaskEntry, pending tasks
        self.dead = dead_daemons

    def plan(self, ref, why: str) -> list[tuple]:
        """What to do to give the lost owned object `ref` a value again."""
        actions: list[tuple] = []
        self._plan_object(ref, why, actions, set())
        return actions

    def plan_arguments(self, task, why: str) -> list[tuple]:
        """Step 4 alone: rebuild the lost arguments of `task`, about to run again."""
        actions: list[tuple] = []
        self._plan_arguments(task, why, actions, {task.task_id})
        return actions

    def _plan_object(self, ref, why: str, actions: list, planned: set) -> None:
        # 1. Owned and lost?
        if not ref.owned or not is_lost(ref, self.dead):
            return
        task = ref.task
        if task is not None and (task.task_id in self.tasks or task.task_id in planned):
            return  # being rebuilt already: its reply gives this object its value
        # 2. Another live copy?
        for daemon, node_id in ref.copies or ():
            if daemon not in self.dead:
                actions.append((PIN, ref, daemon, node_id))
                return
        # 3. Resubmit the creating task, if it can be.
        who = f"object {ref.oid.hex()} owned by {self.refs.address}"
        if task is None:
            cause = _NO_LINEAGE.get(ref.no_lineage, "its lineage was released")
            actions.append((LOST, ref, errors.ObjectLostError(
                f"{who} is lost ({why}) and cannot be rebuilt: {cause}")))
            return
        if task.retries_left == 0 or task.cancelled:
            cause = "was cancelled" if task.cancelled else "has no retries left to rebuild it"
            actions.append((LOST, ref, errors.ObjectReconstructionFailedError(
                f"{who} is lost ({why}) and its task {task.name} {cause}")))
            return
        planned.add(task.task_id)
        # 4. Recurse into its lost arguments first.
        self._plan_arguments(task, why, actions, planned)
        actions.append((RESUBMIT, task))

    def _plan_arguments(self, task, why: str, actions: list, planned: set) -> None:
        table = self.refs.refs
        for oid, _owner in task.deps:
            dep = table.get(oid)
            if dep is not None:
                self._plan_object(dep, why, actions, planned)
