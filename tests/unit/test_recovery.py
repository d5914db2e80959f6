"""Recovery of lost objects at their owner, driven by hand (no processes).

The planner alone (what it decides), then the task manager applying it after a node death:
resubmitting lineage recursively, pinning a surviving secondary copy, and errors that name
the real cause.
"""

from __future__ import annotations

import pytest
from owner_harness import OWNER, Owner
from ownrun.engine import errors
from ownrun.engine.ownership.memory_store import inline_value, shm_value
from ownrun.engine.ownership.recovery import LOST, PIN, RESUBMIT
from ownrun.engine.rpc import protocol as P

D1, N1 = "tcp://daemon1", "node1"
D2, N2 = "tcp://daemon2", "node2"


@pytest.fixture
def owner():
    return Owner()


def run_on_node1(owner, entry, shm: bool = True):
    owner.grant("tcp://w1", daemon=D1, node=N1)
    if shm:
        owner.reply_shm(entry, node=N1, daemon=D1)
    else:
        owner.reply_inline(entry, 7)


def kill_node1(owner):
    owner.step("node_died", N1, D1, ["tcp://w1"], "killed")


def test_lost_task_result_is_rebuilt_by_resubmitting_its_task(owner):
    a = owner.submit(owner.task("a"))
    run_on_node1(owner, a)
    kill_node1(owner)
    assert a.task_id in owner.tm.tasks and owner.ref(a.return_ids[0]).value is None
    assert owner.tm.counters["reconstructions"] == 1
    assert "reconstruct" in [e for e, _ in owner.tm.history(a.task_id)]


def test_recovery_rebuilds_lost_arguments_before_the_task(owner):
    a = owner.submit(owner.task("a"))
    b = owner.submit(owner.task("b", deps=[a.return_ids[0]]))
    owner.drop(a.return_ids[0])
    run_on_node1(owner, a)
    owner.grant("tcp://w1b", daemon=D1, node=N1)  # b goes where its argument is
    owner.reply_shm(b, worker="tcp://w1b", node=N1, daemon=D1)
    owner.tm.dead_daemons.add(D1)  # plan without applying
    plan = owner.tm.recovery.plan(owner.ref(b.return_ids[0]), "node1 died")
    assert [(action[0], action[1]) for action in plan] == [(RESUBMIT, a), (RESUBMIT, b)]


def test_freed_inline_argument_is_rebuilt_from_its_lineage(owner):
    """The bug of issue 7: a small task result used as an argument was not rebuildable."""
    a = owner.submit(owner.task("small"))
    b = owner.submit(owner.task("big", deps=[a.return_ids[0]]))
    owner.drop(a.return_ids[0])
    run_on_node1(owner, a, shm=False)  # inline result, freed once b ran
    owner.reply_shm(b, node=N1, daemon=D1)
    assert owner.ref(a.return_ids[0]).value is None
    kill_node1(owner)
    assert a.task_id in owner.tm.tasks and b.task_id in owner.tm.tasks
    assert b.unresolved == 1  # b waits for the rebuilt a
    owner.grant("tcp://w2", daemon=D2, node=N2)
    owner.reply_inline(a, 7, worker="tcp://w2")
    owner.reply_shm(b, worker="tcp://w2", node=N2, daemon=D2)
    assert owner.value_of(b.return_ids[0]) == ("shm", N2)


def test_unrebuildable_argument_error_names_its_task_not_put(owner):
    a = owner.submit(owner.task("small_without_retries", retries=0))
    b = owner.submit(owner.task("big", deps=[a.return_ids[0]]))
    owner.drop(a.return_ids[0])
    run_on_node1(owner, a, shm=False)
    owner.reply_shm(b, node=N1, daemon=D1)
    kill_node1(owner)
    kind, exc = owner.value_of(b.return_ids[0])
    assert kind == "error" and isinstance(exc, errors.ObjectReconstructionFailedError)
    assert "small_without_retries" in str(exc) and "put()" not in str(exc)


def test_put_argument_freed_names_put_as_the_cause(owner):
    put_id = b"p" * 16 + b"\0\0\0\0"
    owner.step("put", put_id, inline_value([b"x"], 1), None)
    b = owner.submit(owner.task("copy", deps=[put_id]))
    owner.drop(put_id)
    run_on_node1(owner, b)
    kill_node1(owner)
    kind, exc = owner.value_of(b.return_ids[0])
    assert kind == "error" and isinstance(exc, errors.ObjectLostError)
    assert "put()" in str(exc) and OWNER in str(exc) and N1 in str(exc)


def test_live_secondary_copy_is_pinned_instead_of_rerunning_the_task(owner):
    a = owner.submit(owner.task("a"))
    run_on_node1(owner, a)
    owner.step("copy_made", a.return_ids[0], D2, N2)
    kill_node1(owner)
    assert owner.value_of(a.return_ids[0]) == ("shm", N2)
    assert a.task_id not in owner.tm.tasks and owner.tm.counters["reconstructions"] == 0
    assert "pin_copy" in [e for e, _ in owner.tm.history(a.return_ids[0])]
    assert (D2, [P.OBJ_PIN, a.return_ids[0], OWNER]) in owner.sent  # the copy becomes the primary


def test_put_object_with_a_live_copy_survives_its_primary_node(owner):
    put_id = b"q" * 16 + b"\0\0\0\0"
    owner.step("put", put_id, shm_value(N1, 1 << 20, D1), None)
    owner.step("copy_made", put_id, D2, N2)
    owner.tm.dead_daemons.add(D1)
    plan = owner.tm.recovery.plan(owner.ref(put_id), "node1 died")
    assert [p[0] for p in plan] == [PIN]
    owner.tm.dead_daemons.discard(D1)
    kill_node1(owner)
    assert owner.value_of(put_id) == ("shm", N2)
    owner.drop(put_id)  # freeing it frees the copy that is now its primary
    assert (D2, [P.OBJ_FREE, [put_id]]) in owner.sent_of(P.OBJ_FREE)


def test_put_object_without_a_copy_is_lost_with_its_node(owner):
    put_id = b"r" * 16 + b"\0\0\0\0"
    owner.step("put", put_id, shm_value(N1, 1 << 20, D1), None)
    owner.tm.dead_daemons.add(D1)
    [(kind, _ref, exc)] = owner.tm.recovery.plan(owner.ref(put_id), "node1 died")
    assert kind == LOST and "put()" in str(exc)


def test_borrowed_objects_are_not_the_borrowers_to_rebuild(owner):
    ref = owner.tm.refs.get_or_add_borrowed(b"s" * 20, "tcp://other-owner")
    ref.value = shm_value(N1, 10, D1)
    owner.tm.dead_daemons.add(D1)
    assert owner.tm.recovery.plan(ref, "node1 died") == []


def test_objects_beyond_the_lineage_budget_are_lost_naming_the_budget(owner):
    owner.tm.refs.max_lineage_bytes = 0
    a = owner.submit(owner.task("a"))
    run_on_node1(owner, a)
    assert owner.ref(a.return_ids[0]).task is None
    kill_node1(owner)
    kind, exc = owner.value_of(a.return_ids[0])
    assert kind == "error" and "lineage budget" in str(exc)


def test_lost_actor_task_result_names_the_actor_task(owner):
    from ownrun.engine.ownership.task_manager import ACTOR_METHOD

    call = owner.task("Counter.read")
    call.kind = ACTOR_METHOD
    owner.submit(call)  # handed to the actor (ACTOR_ENQUEUE), which pushes it itself
    owner.reply_shm(call, worker="tcp://actor", node=N1, daemon=D1)
    kill_node1(owner)
    kind, exc = owner.value_of(call.return_ids[0])
    assert kind == "error" and "actor task" in str(exc)


def test_kept_lineage_is_accounted_and_released(owner):
    a = owner.submit(owner.task("a"))
    run_on_node1(owner, a)
    assert owner.tm.refs.lineage_bytes > 0
    owner.drop(a.return_ids[0])
    assert owner.tm.refs.lineage_bytes == 0


def test_a_finished_task_cancelled_afterwards_is_not_rerun_to_rebuild_its_lost_output(owner):
    a = owner.submit(owner.task("a"))
    run_on_node1(owner, a)
    owner.step("cancel", a.task_id, False)  # finished: only its lineage is marked (Ray)
    kill_node1(owner)
    assert a.task_id not in owner.tm.tasks
    kind, exc = owner.value_of(a.return_ids[0])
    assert kind == "error" and isinstance(exc, errors.ObjectReconstructionFailedError)
    assert "was cancelled" in str(exc)
