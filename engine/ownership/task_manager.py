"""Records of tasks this process submitted and still owns the outcome of (§3, §5).

Owns `TaskEntry`, the per-task record (spec, return ids, retries left, state), and the
values stored under object ids: `InlineValue`/`ShmValue`/`ErrorValue` tuples kept in the
`Reference` records of the reference counter. A failed task stores an error value under
each of its return ids, so `get` raises it.

Not thread-safe: used with the core worker's state lock held.
"""

from __future__ import annotations

from ..rpc import protocol as P

# Value tuples stored in Reference.value: (kind, frames | daemon address, node_id | None, size)
WAITING_DEPS, QUEUED, PUSHED = 0, 1, 2
NORMAL, ACTOR_CREATION, ACTOR_METHOD = 0, 1, 2


def inline_value(frames: list, size: int) -> tuple:
    return (P.VALUE_INLINE, frames, None, size)


def shm_value(node_id: str, size: int, daemon_address: str) -> tuple:
    """A value in the shared-memory store of node `node_id` (whose daemon is at `daemon_address`)."""
    return (P.VALUE_SHM, daemon_address, node_id, size)


def error_value(frames: list) -> tuple:
    return (P.VALUE_ERROR, frames, None, 0)


class TaskEntry:
    """One submitted task, from `.remote()` until its reply (or final failure)."""

    __slots__ = (
        "task_id", "name", "kind", "fn_id", "fn_blob", "arg_frames", "positions", "deps",
        "nested", "return_ids", "retries_left", "retry_exceptions", "shape", "resources",
        "actor", "state", "unresolved", "worker_id", "cancelled", "dep_meta", "dep_frames",
        "submitted_refs", "extra",
    )

    def __init__(self, task_id, name, kind, fn_id, fn_blob, arg_frames, positions, deps, nested,
                 return_ids, retries_left, retry_exceptions, shape, resources, actor=None):
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
        self.retries_left = retries_left
        self.retry_exceptions = retry_exceptions
        self.shape = shape
        self.resources = resources
        self.actor = actor  # ActorState for actor tasks
        self.state = WAITING_DEPS
        self.unresolved = 0
        self.worker_id = None
        self.cancelled = False
        self.dep_meta = None
        self.dep_frames = None
        self.submitted_refs = None  # every ref counted as submitted for this task
        self.extra = None  # actor creation options sent to the worker

    def header(self, caller: str, send_fn_blob: bool) -> list:
        actor_id = self.actor.actor_id if self.actor is not None else None
        return [P.PUSH_TASK, caller, self.task_id, self.name, self.kind, self.fn_id,
                self.fn_blob if send_fn_blob else None, len(self.return_ids),
                len(self.arg_frames), self.positions, self.dep_meta, actor_id, self.extra]
