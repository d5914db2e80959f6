"""TaskManager driven by hand: submit, resolve, lease, push, reply, retry, cancel, fail, lineage.

No processes: `owner_harness.Owner` feeds events and records the instructions; every step
is followed by `validate_state()`.
"""

from __future__ import annotations

import collections
import types

import numpy as np
import pytest
from owner_harness import DAEMON, NODE, OWNER, Owner
from ownrun.engine import errors
from ownrun.engine.ownership import actor_submitter as S
from ownrun.engine.ownership.actor_submitter import PENDING, RESTARTING
from ownrun.engine.ownership.task_manager import HISTORY_PER_ID, PUSHED, QUEUED, WAITING_DEPS
from ownrun.engine.rpc import protocol as P
from ownrun.engine.worker import serialization


@pytest.fixture
def owner():
    return Owner()


def test_task_is_pushed_once_a_lease_arrives_and_its_reply_is_stored(owner):
    f = owner.submit(owner.task())
    assert f.state == QUEUED and owner.lease_requests
    owner.grant()
    assert f.state == PUSHED and owner.pushed == [(f.task_id, "tcp://w1")]
    owner.reply_inline(f, 42)
    assert owner.value_of(f.return_ids[0]) == 42
    assert not owner.tm.tasks


def test_dependent_task_waits_for_its_argument_and_then_is_queued(owner):
    a = owner.submit(owner.task("a"))
    b = owner.submit(owner.task("b", deps=[a.return_ids[0]]))
    assert b.state == WAITING_DEPS and b.unresolved == 1
    owner.grant()
    owner.reply_inline(a, 1)
    assert b.state in (QUEUED, PUSHED)
    frame = serialization.serialize(1)[0][0]
    assert b.dep_meta == [len(frame)] and b.dep_frames == [frame], "a small pickle goes packed"


def test_small_argument_values_are_packed_into_one_frame_in_argument_order(owner):
    """Top-level arguments whose value is one small pickle without refs inside travel as
    their lengths in the push's metadata and one joined frame (the last); the rest keep
    their own metadata and frames, in argument order."""
    small = [owner.submit(owner.task(f"s{i}")) for i in range(3)]
    big = owner.submit(owner.task("big"))
    arrays = owner.submit(owner.task("arrays"))
    deps = [small[0].return_ids[0], big.return_ids[0], small[1].return_ids[0], arrays.return_ids[0],
            small[2].return_ids[0]]
    user = owner.submit(owner.task("user", deps=deps))
    owner.grant()
    for i, entry in enumerate(small):
        owner.reply_inline(entry, i * 1000)
    owner.reply_inline(big, b"x" * (P.PACKED_ARG_MAX + 1))
    owner.reply_inline(arrays, np.arange(10))  # a pickle and an out-of-band buffer: two frames
    assert user.state in (QUEUED, PUSHED)
    pickles = [serialization.serialize(i * 1000)[0][0] for i in range(3)]
    big_frames = serialization.serialize(b"x" * (P.PACKED_ARG_MAX + 1))[0]
    kinds = [m if type(m) is int else m[:2] for m in user.dep_meta]
    assert kinds == [len(pickles[0]), [P.VALUE_INLINE, 1], len(pickles[1]), [P.VALUE_INLINE, 2], len(pickles[2])]
    assert user.dep_frames[0] == big_frames[0] and len(user.dep_frames) == 1 + 2 + 1
    assert user.dep_frames[-1] == b"".join(pickles)
    owner.validate()


def test_a_recalled_owner_runs_the_task_its_reply_made_ready_on_the_same_lease(owner):
    """An owner that is behind (its next task waited only for this one's result) keeps the
    lease through a recall and pushes that task to the same worker, instead of handing the
    lease back and queueing behind every other owner for a new one; once nothing of the
    shape waits, the lease goes back."""
    a = owner.submit(owner.task("flow"))
    owner.grant()
    b = owner.submit(owner.task("flow", deps=[a.return_ids[0]]))
    owner.tm.submitter.recall(now=0.5, hold_s=10.0)  # others wait for workers
    owner.drain()
    owner.reply_inline(a, 1)
    assert b.state == PUSHED and owner.pushed[-1] == (b.task_id, "tcp://w1")
    assert owner.sent_of(P.LEASE_RETURN) == [] and owner.lease_requests == []
    owner.reply_inline(b, 2)
    assert [h[1] for _, h in owner.sent_of(P.LEASE_RETURN)] == [b"tcp://w1"]


def test_error_argument_fails_the_dependent_task_with_that_error(owner):
    a = owner.submit(owner.task("a", retries=0))
    b = owner.submit(owner.task("b", deps=[a.return_ids[0]]))
    owner.grant()
    owner.reply_error(a, ValueError("boom"))
    kind, exc = owner.value_of(b.return_ids[0])
    assert kind == "error" and isinstance(exc, ValueError)
    assert b.task_id not in owner.tm.tasks


def test_retry_exceptions_requeues_until_retries_are_used_up(owner):
    f = owner.submit(owner.task(retries=1, retry_exceptions=True))
    owner.grant()
    owner.reply_error(f, ValueError("first"))
    assert f.task_id in owner.tm.tasks and f.retries_left == 0
    assert owner.tm.counters["task_retries"] == 1
    owner.reply_error(f, ValueError("second"))
    kind, exc = owner.value_of(f.return_ids[0])
    assert kind == "error" and "second" in str(exc)


def test_worker_death_retries_its_task_then_fails_with_worker_crashed(owner):
    f = owner.submit(owner.task(retries=1))
    owner.grant()
    owner.step("worker_died", b"tcp://w1", "tcp://w1", "it crashed")
    assert f.task_id in owner.tm.tasks and f.retries_left == 0
    owner.grant("tcp://w2")
    owner.step("worker_died", b"tcp://w2", "tcp://w2", "it crashed again")
    kind, exc = owner.value_of(f.return_ids[0])
    assert kind == "error" and isinstance(exc, errors.WorkerCrashedError)
    assert "crashed again" in str(exc)


def test_cancel_of_a_waiting_task_stores_task_cancelled(owner):
    a = owner.submit(owner.task("a"))
    b = owner.submit(owner.task("b", deps=[a.return_ids[0]]))
    owner.step("cancel", b.task_id, False)
    kind, exc = owner.value_of(b.return_ids[0])
    assert kind == "error" and isinstance(exc, errors.TaskCancelledError)


def test_cancel_of_a_pushed_task_asks_its_worker(owner):
    f = owner.submit(owner.task())
    owner.grant()
    owner.step("cancel", f.task_id, True)
    assert owner.sent_of(P.CANCEL_TASK) == [("tcp://w1", [P.CANCEL_TASK, f.task_id, True, True])]


def test_infeasible_lease_fails_the_queued_tasks_with_the_daemons_reason(owner):
    f = owner.submit(owner.task())
    request_id = owner.lease_requests.pop(0)
    owner.step("lease_granted", request_id, None, "no node can satisfy {'GPU': 1}", "node0", DAEMON, None, 0.0)
    kind, exc = owner.value_of(f.return_ids[0])
    assert kind == "error" and "GPU" in str(exc)


def test_inline_return_keeps_lineage_while_a_downstream_object_needs_it(owner):
    a = owner.submit(owner.task("a"))
    b = owner.submit(owner.task("b", deps=[a.return_ids[0]]))
    owner.drop(a.return_ids[0])  # only b (and later b's lineage) needs a
    owner.grant()
    owner.reply_inline(a, 1)
    owner.reply_shm(b)
    a_ref = owner.ref(a.return_ids[0])
    assert a_ref is not None and a_ref.freed and a_ref.value is None  # value freed, record kept
    assert a_ref.task is a, "lineage of the inline return is kept"
    owner.drop(b.return_ids[0])
    assert owner.ref(b.return_ids[0]) is None and owner.ref(a.return_ids[0]) is None
    assert owner.sent_of(P.OBJ_FREE) == [(DAEMON, [P.OBJ_FREE, [b.return_ids[0]]])]


def test_a_long_inline_chain_is_released_without_deep_recursion(owner):
    prev = owner.submit(owner.task("a0"))
    owner.grant()
    for i in range(1, 1500):  # deeper than Python's recursion limit
        nxt = owner.task(f"a{i}", deps=[prev.return_ids[0]])
        owner.tm.submit(nxt)
        owner.tm.apply_ref_ops(collections.deque([(prev.return_ids[0], OWNER, -1)]))
        owner.tm.task_reply("tcp://w1", prev.task_id, [[P.VALUE_INLINE, 1, None]], None, b"tcp://w1",
                            0.01, [b"header", b"x"], 1.0)
        owner.drain()
        prev = nxt
    owner.tm.validate_state()
    assert len(owner.tm.refs.refs) == 1500  # the chain's lineage is kept
    owner.reply_inline(prev, 1)
    owner.drop(prev.return_ids[0])
    assert len(owner.tm.refs.refs) == 0


def test_history_tells_what_happened_to_a_task(owner):
    f = owner.submit(owner.task(retries=1))
    owner.grant()
    owner.step("worker_died", b"tcp://w1", "tcp://w1", "it crashed")
    owner.grant("tcp://w2")
    owner.reply_inline(f, 3, worker="tcp://w2")
    events = [event for event, _state in owner.tm.history(f.task_id)]
    assert events == ["submit", "queue", "push", "retry", "resubmit", "queue", "push", "reply"]
    assert len(owner.tm.history(f.task_id)) <= HISTORY_PER_ID


def test_owns_anything_while_tasks_are_pending_or_owned_objects_live(owner):
    assert not owner.tm.owns_anything()
    f = owner.submit(owner.task())
    assert owner.tm.owns_anything()
    owner.grant()
    owner.reply_inline(f, 1)
    assert owner.tm.owns_anything()  # the user still holds the result
    owner.drop(f.return_ids[0])
    assert not owner.tm.owns_anything()


def test_borrower_asking_for_a_pending_value_is_answered_when_it_arrives(owner):
    f = owner.submit(owner.task())
    owner.step("get_value", "tcp://borrower", f.return_ids[0])
    assert not owner.sent_of(P.VALUE_REPLY)
    # ... and told at once that it has no value yet (the borrower's get truly blocks)
    assert owner.sent_of(P.VALUE_PENDING) == [("tcp://borrower", [P.VALUE_PENDING, f.return_ids[0]])]
    owner.grant()
    owner.reply_inline(f, 5)
    [(addr, header)] = owner.sent_of(P.VALUE_REPLY)
    assert addr == "tcp://borrower" and header[1] == f.return_ids[0]


def test_timeline_hook_hears_lease_waits_retries_and_failures_but_not_each_success(owner):
    heard = []
    owner.tm.on_event = lambda kind, key, name, detail: heard.append((kind, key, name, detail))
    ok = owner.submit(owner.task("ok"))
    request_id = owner.lease_requests[0]
    owner.grant()
    owner.reply_inline(ok, 1)
    assert heard == [("lease_asked", request_id, {"CPU": 1.0}, None),
                     ("lease_answered", request_id, "node0", None)]
    heard.clear()
    f = owner.submit(owner.task("flaky", retries=1))
    owner.step("worker_died", b"tcp://w1", "tcp://w1", "it crashed")
    owner.grant("tcp://w2")
    owner.step("worker_died", b"tcp://w2", "tcp://w2", "it crashed again")
    kinds = [(kind, name) for kind, key, name, detail in heard if key == f.task_id]
    assert kinds == [("retry", "flaky"), ("failure", "flaky")]
    assert "crashed again" in [detail for kind, key, name, detail in heard if kind == "failure"][0]


def test_timeline_hook_hears_a_cancelled_lease_request_answered(owner):
    heard = []
    owner.tm.on_event = lambda kind, key, name, detail: heard.append((kind, key, detail))
    f = owner.submit(owner.task())
    request_id = owner.lease_requests[0]
    owner.step("cancel", f.task_id, False)
    owner.tm.submitter.return_idle(10.0, 0.0)  # the housekeeping tick: nothing queued any more
    owner.drain()
    assert ("lease_answered", request_id, "cancelled") in heard


class _GetWaiter:
    """Stands for objects.Waiter: anything with ready_one() and nudge()."""

    def ready_one(self, failed=False):
        pass

    def nudge(self):
        pass


def test_a_get_of_a_borrowed_object_is_nudged_only_when_its_owner_has_no_value_either(owner):
    oid = b"borrowed-object-id-0001"
    ref = types.SimpleNamespace(id=oid, owner="tcp://other-owner")
    waiter = _GetWaiter()
    owner.tm.wait_for_values([ref], lambda missing, ready: waiter)
    owner.drain()
    assert owner.sent_of(P.GET_VALUE) == [("tcp://other-owner", [P.GET_VALUE, OWNER, oid])]
    assert owner.nudged == [] and not owner.ref(oid).owner_pending
    owner.step("value_pending", oid)
    assert owner.nudged == [waiter] and owner.ref(oid).owner_pending
    owner.step("value_reply", oid, [P.VALUE_INLINE, 1, None], [b"header", b"x"], "tcp://other-owner")
    assert owner.woken == [waiter]
    assert owner.ref(oid) is None or not owner.ref(oid).owner_pending
    owner.step("value_pending", oid)  # a late notice for a value we have: nothing to do
    assert owner.nudged == [waiter]


# ---- an actor whose constructor argument was lost with its node ---------------------------------------
NODE_B, DAEMON_B = "nodeB", "tcp://daemonB"


def test_a_task_with_a_shared_memory_argument_asks_that_node_for_its_lease_beside_packed_ones(owner):
    """Packed small arguments do not hide a large one's node from the lease's locality."""
    make = owner.submit(owner.task("make"))
    small = owner.submit(owner.task("small"))
    owner.grant("tcp://wb", DAEMON_B, NODE_B)
    owner.reply_shm(make, "tcp://wb", NODE_B, DAEMON_B)
    owner.reply_inline(small, 7, "tcp://wb")
    before = len(owner.sent_of(P.LEASE_REQUEST))
    use = owner.submit(owner.task("use", deps=[small.return_ids[0], make.return_ids[0]]))
    assert type(use.dep_meta[0]) is int and use.dep_meta[1][5] == DAEMON_B
    asked = [addr for addr, _ in owner.sent_of(P.LEASE_REQUEST)[before:]]
    assert asked == [DAEMON_B]
    owner.validate()


def _actor_on_node_b(owner):
    """An actor (max_restarts=-1) on node B, constructed with `make`'s return, whose only copy
    is on node B; one call has run on it."""
    make = owner.submit(owner.task("make"))
    owner.grant("tcp://wb", DAEMON_B, NODE_B)
    owner.reply_shm(make, "tcp://wb", NODE_B, DAEMON_B)
    actor, creation = owner.create_actor([make.return_ids[0]])
    owner.grant("tcp://a1", DAEMON_B, NODE_B)
    assert actor.pushed == [("init", b"tcp://a1")] and creation.dep_meta[0][5] == DAEMON_B
    first = owner.call(actor, "first")
    assert actor.pushed[-1] == ("init", b"tcp://a1"), "a call waits for the constructor's reply"
    owner.reply_inline(creation, None, "tcp://a1")
    assert actor.pushed[-1] == ("first", b"tcp://a1")
    owner.reply_inline(first, 1, "tcp://a1")
    return make, actor, creation


def _rebuild_on_node_a(owner, make):
    """The lost argument's task re-runs on the owner's node: its new copy is there."""
    owner.grant("tcp://w2")
    assert owner.pushed[-1] == (make.task_id, "tcp://w2")
    owner.reply_shm(make, "tcp://w2")


def _constructs_and_serves(owner, actor, creation, call, worker: str):
    owner.grant(worker)
    assert actor.pushed[-1] == ("init", worker.encode())
    assert creation.dep_meta[0][5] == DAEMON, "the constructor reads the argument's new copy"
    owner.reply_inline(creation, None, worker)
    assert actor.pushed[-1] == (call.name, worker.encode())
    owner.reply_inline(call, 7, worker)
    assert owner.value_of(call.return_ids[0]) == 7


def test_a_restart_after_the_node_death_is_known_rebuilds_the_constructor_argument_first(owner):
    make, actor, creation = _actor_on_node_b(owner)
    # The head's NODE_DIED: the argument's only copy is lost and its task re-runs; then the
    # actor's worker, which was on that node, restarts.
    owner.step("node_died", NODE_B, DAEMON_B, ["tcp://wb", "tcp://a1"], "SIGKILL")
    assert make.task_id in owner.tm.tasks
    actor.step("worker_died", None, f"node {NODE_B} died")
    assert not owner.tm.actor_lease_requests, "no actor lease before its argument is back"
    later = owner.call(actor, "later")
    _rebuild_on_node_a(owner, make)
    _constructs_and_serves(owner, actor, creation, later, "tcp://a2")
    assert actor.machine.restarts == 1 and actor.killed == []
    assert creation.task_id not in owner.tm.tasks and creation.submitted_refs, "kept for the next restart"


def test_a_constructor_that_could_not_fetch_its_argument_waits_for_the_node_death_and_costs_no_restart(owner):
    make, actor, creation = _actor_on_node_b(owner)
    # The actor's worker is seen dying first: node B is not known dead yet, so the restarted
    # constructor is sent to read the copy on node B, and cannot.
    owner.step("worker_died", b"tcp://a1", "tcp://a1", "connection lost")
    actor.step("worker_died", None, "connection lost")
    owner.grant("tcp://a2")
    assert actor.pushed[-1] == ("init", b"tcp://a2") and creation.dep_meta[0][5] == DAEMON_B
    later = owner.call(actor, "later")
    owner.reply_arg_lost(creation, "tcp://a2")
    assert actor.killed == [(b"tcp://a2", S.ARGUMENT_LOST)]
    assert actor.machine.restarts == 1 and actor.machine.state == RESTARTING
    assert later.task_id in owner.tm.tasks and not owner.lease_requests, "it waits for the death notice"
    assert ("later", b"tcp://a2") not in actor.pushed
    owner.step("worker_died", b"tcp://a2", "tcp://a2", S.ARGUMENT_LOST)  # our kill landed
    owner.step("node_died", NODE_B, DAEMON_B, ["tcp://wb"], "SIGKILL")
    _rebuild_on_node_a(owner, make)
    _constructs_and_serves(owner, actor, creation, later, "tcp://a3")
    assert actor.machine.restarts == 1


def test_a_first_constructor_that_could_not_fetch_its_argument_is_started_again(owner):
    make = owner.submit(owner.task("make"))
    owner.grant("tcp://wb", DAEMON_B, NODE_B)
    owner.reply_shm(make, "tcp://wb", NODE_B, DAEMON_B)
    actor, creation = owner.create_actor([make.return_ids[0]], max_restarts=0)
    owner.step("node_died", NODE_B, DAEMON_B, ["tcp://wb"], "SIGKILL")  # after the push
    first = owner.call(actor, "first")
    owner.grant("tcp://a1")
    owner.reply_arg_lost(creation, "tcp://a1")
    assert actor.machine.state == PENDING and actor.killed == [(b"tcp://a1", S.ARGUMENT_LOST)]
    _rebuild_on_node_a(owner, make)
    _constructs_and_serves(owner, actor, creation, first, "tcp://a2")
    assert actor.machine.restarts == 0


def test_a_restart_asks_the_owner_of_a_borrowed_argument_lost_with_its_node(owner):
    table = b"noise-table-id-000001"
    other = "tcp://driver"
    owner.tm.refs.get_or_add_borrowed(table, other)
    owner.step("apply_ref_ops", collections.deque([(table, other, 1)]))
    owner.step("value_reply", table, [P.VALUE_SHM, NODE_B, 1 << 20, None, DAEMON_B], [b"header"], other)
    actor, creation = owner.create_actor([table], dep_owner=other)
    owner.grant("tcp://a1", DAEMON_B, NODE_B)
    owner.reply_inline(creation, None, "tcp://a1")
    owner.step("node_died", NODE_B, DAEMON_B, ["tcp://a1"], "SIGKILL")
    actor.step("worker_died", None, f"node {NODE_B} died")
    assert owner.sent_of(P.GET_VALUE) == [(other, [P.GET_VALUE, OWNER, table])]
    assert not owner.lease_requests, "not sent to read the copy that died"
    later = owner.call(actor, "later")
    owner.step("value_reply", table, [P.VALUE_SHM, NODE, 1 << 20, None, DAEMON], [b"header"], other)
    _constructs_and_serves(owner, actor, creation, later, "tcp://a2")


def test_a_killed_actor_drops_its_creation_while_it_resolves_again(owner):
    make, actor, creation = _actor_on_node_b(owner)
    owner.step("node_died", NODE_B, DAEMON_B, ["tcp://wb", "tcp://a1"], "SIGKILL")
    actor.step("worker_died", None, f"node {NODE_B} died")
    pending = owner.call(actor, "pending")
    actor.step("kill", S.KILLED)
    assert creation.task_id not in owner.tm.tasks and creation.submitted_refs is None
    kind, exc = owner.value_of(pending.return_ids[0])
    assert kind == "error" and isinstance(exc, errors.ActorDiedError)
    _rebuild_on_node_a(owner, make)  # the argument arrives: nothing is started for a dead actor
    assert not owner.lease_requests and actor.pushed[-1] == ("first", b"tcp://a1")


def test_a_late_creation_reply_from_a_worker_the_actor_left_is_ignored(owner):
    make, actor, creation = _actor_on_node_b(owner)
    owner.step("node_died", NODE_B, DAEMON_B, ["tcp://wb", "tcp://a1"], "SIGKILL")
    actor.step("worker_died", None, f"node {NODE_B} died")
    owner.reply_inline(creation, None, "tcp://a1")  # sent before it died, arrived after
    assert owner.tm.tasks[creation.task_id] is creation and creation.state == WAITING_DEPS
    _rebuild_on_node_a(owner, make)
    _constructs_and_serves(owner, actor, creation, owner.call(actor, "later"), "tcp://a2")


def test_a_constructor_that_raised_keeps_its_arguments_for_a_restart(owner):
    make = owner.submit(owner.task("make"))
    owner.grant("tcp://wb")
    owner.reply_shm(make, "tcp://wb")
    actor, creation = owner.create_actor([make.return_ids[0]])
    owner.drop(make.return_ids[0])  # only the actor needs it now
    owner.grant("tcp://a1")
    owner.reply_error(creation, ValueError("bad config"), "tcp://a1")
    assert creation.submitted_refs and owner.ref(make.return_ids[0]).value is not None
    owner.step("worker_died", b"tcp://a1", "tcp://a1", "SIGKILL")
    actor.step("worker_died", None, "SIGKILL")
    later = owner.call(actor, "later")
    _constructs_and_serves(owner, actor, creation, later, "tcp://a2")


def test_an_actor_killed_while_its_constructor_waits_for_a_node_death_is_not_started_again(owner):
    make = owner.submit(owner.task("make"))
    owner.grant("tcp://wb", DAEMON_B, NODE_B)
    owner.reply_shm(make, "tcp://wb", NODE_B, DAEMON_B)
    actor, creation = owner.create_actor([make.return_ids[0]])
    owner.drop(make.return_ids[0])
    owner.grant("tcp://a1")
    owner.reply_arg_lost(creation, "tcp://a1")  # node B is not known dead yet: it waits
    actor.step("kill", S.KILLED)
    kind, exc = owner.value_of(creation.return_ids[0])
    assert kind == "error" and isinstance(exc, errors.ActorDiedError)
    owner.step("node_died", NODE_B, DAEMON_B, ["tcp://wb"], "SIGKILL")
    assert creation.task_id not in owner.tm.tasks and not owner.tm.actor_lease_requests
    assert owner.ref(make.return_ids[0]) is None, "nothing holds the argument any more"
