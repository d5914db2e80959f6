"""The owner's side of scheduling strategies, driven by hand: a task's lease is asked for at the
daemon its strategy names ("place_on"), pinned or not; a node that dies fails what is pinned
to it (tasks and actors) and sends the rest elsewhere."""

from __future__ import annotations

from owner_harness import Owner
from ownrun.engine import errors
from ownrun.engine.ownership import task_manager as tm
from ownrun.engine.rpc import protocol as P

D1, N1 = "tcp://daemon1", "node1"


def placed(owner: Owner, name: str, pinned: bool, soft: bool | None = None):
    entry = owner.task(name)
    entry.extra = {"place_on": [D1, pinned, not pinned if soft is None else soft]}
    return entry


def test_a_pinned_task_asks_only_that_daemon_and_says_so():
    owner = Owner()
    owner.submit(placed(owner, "pinned", True))
    owner.submit(placed(owner, "soft", False))
    owner.submit(placed(owner, "spread", False, soft=False))
    requests = owner.sent_of(P.LEASE_REQUEST)
    assert [addr for addr, _ in requests] == [D1, D1, D1]
    pinned, soft, spread = (h for _, h in requests)
    assert pinned[7] == {"pinned": True}
    assert soft[7] == {"soft_affinity": True}  # the daemon keeps it while busy (as Ray)
    assert len(spread) == 7  # a plain request: the daemon may spill it


def test_node_death_fails_tasks_pinned_to_it_and_sends_soft_ones_elsewhere():
    owner = Owner()
    pinned = owner.submit(placed(owner, "pinned", True))
    soft = owner.submit(placed(owner, "soft", False))
    owner.step("node_died", N1, D1, [], "killed")
    kind, exc = owner.value_of(pinned.return_ids[0])
    assert kind == "error" and isinstance(exc, errors.TaskUnschedulableError)
    assert soft.task_id in owner.tm.tasks  # asked for again at our own daemon
    later = owner.submit(placed(owner, "later", True))  # pinned to a node known dead: fails at once
    assert isinstance(owner.value_of(later.return_ids[0])[1], errors.TaskUnschedulableError)


class _Actor:
    def __init__(self, target):
        self.target = target
        self.resources = {}

    def lease_options(self):
        return {"pinned": True} if self.target and self.target[1] else None


def test_an_actor_pinned_to_a_dead_node_gets_no_lease_anywhere_else():
    owner = Owner()
    actor = _Actor([D1, True])
    owner.tm.request_actor_lease(actor, {"CPU": 1.0})
    assert owner.tm.out[-1][1] == D1 and owner.tm.out[-1][2][7] == {"pinned": True}
    owner.tm.out.clear()
    owner.tm.node_died(N1, D1, [], "killed")
    failed = [ins for ins in owner.tm.out if ins[0] == tm.ACTOR_LEASE]
    assert failed == [(tm.ACTOR_LEASE, actor, None, tm._PINNED_NODE_DIED)]
    assert not [ins for ins in owner.tm.out if ins[0] == tm.SEND and ins[2][0] == P.LEASE_REQUEST]
