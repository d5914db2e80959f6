"""What one owner process answers to a STATE_QUERY: the tasks, objects and actors it owns.

Owns turning the core worker's records into plain rows (msgpack-able dicts, ids as hex):

* tasks: the pending ones (`TaskManager.tasks`, with their state) and the most recent
  finished ones (`TaskManager.finished`, bounded: `task_manager.FINISHED_TASKS`);
* objects: the records of objects this process owns (borrowed ones are their owner's to
  report) with their size, where the value is, copies, reference counts and the call site
  that created them (callsites.py: with OWNRUN_RECORD_CALLSITES=1, else None);
* actors: the actors this process created (their creator owns them);
* timeline: this process's timeline events (spans.py's ring buffer: the tasks it ran,
  their argument fetches, its lease waits, retries and failures as an owner).

The node of a task's worker is not known here (only its worker id); `gather` fills it in.
Read-only. Runs on the core worker's I/O thread with its state lock held (the handler);
each row is built from fields read there, so the answer is a consistent snapshot.
"""

from __future__ import annotations

from ..ownership import memory_store as ms
from ..ownership.task_manager import STATE_NAMES

KINDS = ("tasks", "objects", "actors", "timeline")
TASK_TYPES = ("normal", "actor_creation", "actor_method")
_WHERE = {ms.INLINE: "inline", ms.SHM: "shared_memory", ms.ERROR: "error"}


def _hex(value) -> str | None:
    return value.hex() if isinstance(value, bytes) else value


def snapshot(core, what: list) -> dict:
    """The rows of each kind in `what` (a subset of KINDS) that `core` owns."""
    owner = {"owner": core.address, "owner_node": core.node_id, "owner_kind": core.mode}
    answer: dict = {"owner": owner}
    if "tasks" in what:
        answer["tasks"] = tasks(core.tm, owner)
    if "objects" in what:
        answer["objects"] = objects(core.tm.refs.refs, owner, core.callsites.get)
    if "actors" in what:
        answer["actors"] = actors(core.actors, owner)
    if "timeline" in what:
        from .spans import EVENTS

        answer["timeline"] = {**EVENTS.snapshot(), "worker_id": core.worker_id.hex(), **owner}
    return answer


def tasks(tm, owner: dict) -> list[dict]:
    rows = []
    pending = tm.tasks
    for task_id, name, kind, state, worker_id in tm.finished:
        if task_id not in pending:  # a retried task is pending again: reported below
            rows.append(_task(task_id, name, kind, state, worker_id, owner))
    for entry in pending.values():
        rows.append(_task(entry.task_id, entry.name, entry.kind, STATE_NAMES[entry.state], entry.worker_id, owner))
    return rows


def _task(task_id, name, kind, state, worker_id, owner) -> dict:
    return {"task_id": task_id.hex(), "name": name, "state": state, "type": TASK_TYPES[kind],
            "worker_id": _hex(worker_id), "node_id": None, **owner}


def _no_callsite(oid: bytes) -> None:
    return None


def objects(refs: dict, owner: dict, callsite=_no_callsite) -> list[dict]:
    rows = []
    for oid, ref in refs.items():
        if not ref.owned:
            continue
        value = ref.value
        if value is None:
            where, node = ("freed" if ref.freed else "pending"), None
        else:
            where = _WHERE.get(value.kind, str(value.kind))
            node = value.node_id if value.kind == ms.SHM else owner["owner_node"]
        rows.append({"object_id": oid.hex(), "size": ref.size or (value.size if value is not None else 0),
                     "where": where, "node_id": node,
                     "pinned": value is not None and value.kind == ms.SHM,  # the primary copy stays while in scope
                     "copies": len(ref.copies or ()), "local_refs": ref.local, "submitted_refs": ref.submitted,
                     "contained_in": ref.contained_in, "borrowers": ref.borrowed(),
                     "callsite": callsite(oid), **owner})
    return rows


def actors(table: dict, owner: dict) -> list[dict]:
    rows = []
    for actor_id, actor in table.items():
        if not actor.owned:
            continue
        machine = actor.machine
        rows.append({"actor_id": actor_id.hex(), "name": actor.name, "class_name": actor.class_name,
                     "state": machine.state, "address": machine.address, "worker_id": _hex(machine.worker_id),
                     "node_id": machine.node_id, "restarts": machine.restarts, "dead_reason": machine.dead_reason,
                     **owner})
    return rows
