"""Placement groups on the head (`head/placement_groups.py`) and bundles on a node
(`LeaseScheduler.set_bundles`), driven with events; `validate_state()` after every step."""

from __future__ import annotations

import itertools

import pytest
from ownrun.engine.head.placement_groups import (
    CREATED,
    PENDING,
    REMOVED,
    RESCHEDULING,
    PlacementGroups,
    check_bundles,
)
from ownrun.engine.node.scheduler import LEASED, LeaseRequest, LeaseScheduler
from ownrun.engine.placement_resources import bundle_resources, held_bundles, in_group

_ids = (i.to_bytes(18, "big") for i in itertools.count(1))


def nodes(**cpus) -> dict:
    """{node id: {"total", "available"}} with that many free CPUs each."""
    return {n: {"total": {"CPU": float(c)}, "available": {"CPU": float(c)}} for n, c in cpus.items()}


def create(groups: PlacementGroups, bundles, strategy="PACK", creator="tcp://driver", detached=False, name=""):
    record = groups.create(next(_ids), bundles, strategy, name, "", creator, detached)
    groups.validate_state()
    return record


def report_all_held(groups: PlacementGroups) -> None:
    """Every node reports holding what it was assigned (its daemon reserved it)."""
    by_node: dict = {}
    for record in groups.groups.values():
        for i, node in record.assigned.items():
            by_node.setdefault(node, set()).add((record.hex, i))
    for node, held in by_node.items():
        groups.node_reported(node, held)
        groups.validate_state()


def place(groups: PlacementGroups, view: dict) -> list:
    placed = groups.place(view)
    groups.validate_state()
    return placed


def test_pack_puts_every_bundle_on_one_node_that_fits_them():
    groups = PlacementGroups()
    record = create(groups, [{"CPU": 1}, {"CPU": 1}])
    assert place(groups, nodes(a=1, b=2)) == [record]
    assert set(record.assigned.values()) == {"b"} and record.state == PENDING
    report_all_held(groups)
    assert record.state == CREATED


def test_pack_splits_over_nodes_when_none_fits_all_but_strict_pack_waits():
    groups = PlacementGroups()
    packed = create(groups, [{"CPU": 1}, {"CPU": 1}], "PACK")
    strict = create(groups, [{"CPU": 1}, {"CPU": 1}], "STRICT_PACK")
    place(groups, nodes(a=1, b=1, c=1))
    assert len(set(packed.assigned.values())) == 2
    assert strict.assigned == {} and strict.state == PENDING


def test_spread_uses_distinct_nodes_and_strict_spread_waits_for_enough_nodes():
    groups = PlacementGroups()
    spread = create(groups, [{"CPU": 1}] * 3, "SPREAD")
    strict = create(groups, [{"CPU": 1}] * 3, "STRICT_SPREAD")
    place(groups, nodes(a=4, b=4))
    assert sorted(spread.assigned.values()).count("a") in (1, 2) and len(spread.assigned) == 3
    assert strict.assigned == {}
    place(groups, nodes(a=4, b=4, c=4))
    assert len(set(strict.assigned.values())) == 3


def test_bundles_assigned_but_not_yet_held_count_against_a_nodes_capacity():
    groups = PlacementGroups()
    first = create(groups, [{"CPU": 2}])
    second = create(groups, [{"CPU": 2}])
    place(groups, nodes(a=2))
    assert first.assigned == {0: "a"} and second.assigned == {}
    assert groups.desired("a") == [[first.hex, 0, {"CPU": 2}]]


def test_a_group_is_created_only_once_every_bundle_is_held():
    groups = PlacementGroups()
    record = create(groups, [{"CPU": 1}, {"CPU": 1}], "STRICT_SPREAD")
    place(groups, nodes(a=1, b=1))
    groups.node_reported(record.assigned[0], {(record.hex, 0)})
    groups.validate_state()
    assert record.state == PENDING
    groups.node_reported(record.assigned[1], {(record.hex, 1)})
    assert record.state == CREATED


def test_a_dead_nodes_bundles_are_placed_again_on_a_live_node():
    groups = PlacementGroups()
    record = create(groups, [{"CPU": 1}, {"CPU": 1}], "SPREAD")
    place(groups, nodes(a=1, b=1))
    report_all_held(groups)
    lost_node = record.assigned[0]
    assert groups.node_died(lost_node) == [record]
    groups.validate_state()
    assert record.state == RESCHEDULING and 0 not in record.assigned and record.held == {1}
    survivor = record.assigned[1]
    place(groups, {n: v for n, v in nodes(a=1, b=1, c=1).items() if n != lost_node})
    assert record.assigned[0] not in (lost_node, survivor)
    report_all_held(groups)
    assert record.state == CREATED


def test_a_pending_group_that_loses_a_node_is_placed_again_as_a_whole():
    groups = PlacementGroups()
    record = create(groups, [{"CPU": 1}, {"CPU": 1}], "STRICT_PACK")
    place(groups, nodes(a=2))
    groups.node_died("a")
    groups.validate_state()
    assert record.assigned == {} and record.state == PENDING


def test_removal_and_the_creators_exit_release_bundles_but_not_a_detached_groups():
    groups = PlacementGroups()
    removed = create(groups, [{"CPU": 1}])
    owned = create(groups, [{"CPU": 1}], creator="tcp://worker")
    detached = create(groups, [{"CPU": 1}], creator="tcp://worker", detached=True)
    place(groups, nodes(a=3))
    assert groups.remove(removed.pg_id) is removed and groups.remove(removed.pg_id) is None
    assert groups.creator_exited("tcp://worker") == [owned]
    groups.validate_state()
    assert (removed.state, owned.state, detached.state) == (REMOVED, REMOVED, PENDING)
    assert groups.desired("a") == [[detached.hex, 0, {"CPU": 1}]]
    waiting = create(groups, [{"CPU": 2}])  # what the removed ones held fits it now
    place(groups, nodes(a=3))
    assert waiting.assigned == {0: "a"}


def test_names_are_unique_among_live_groups_of_a_namespace():
    groups = PlacementGroups()
    first = create(groups, [{"CPU": 1}], name="g")
    with pytest.raises(ValueError, match="named 'g' exists"):
        create(groups, [{"CPU": 1}], name="g")
    assert groups.find_named("g", "") is first and groups.find(first.hex) is first
    groups.remove(first.pg_id)
    assert create(groups, [{"CPU": 1}], name="g").name == "g"


@pytest.mark.parametrize("bundles", [[], [{}], [{"CPU": 0}], [{"CPU": -1}], [{"CPU": "1"}], "CPU",
                                     [{"CPU_group_x": 1}]])
def test_bad_bundles_are_refused(bundles):
    with pytest.raises(ValueError, match="bundle"):
        check_bundles(bundles)


def test_a_persisted_group_is_taken_back_with_its_nodes():
    groups = PlacementGroups()
    record = create(groups, [{"CPU": 1}], detached=True, name="kept")
    place(groups, nodes(a=1))
    again = PlacementGroups()
    again.load(record.row())
    again.validate_state()
    loaded = again.find(record.pg_id)
    assert loaded.assigned == {0: "a"} and loaded.detached and loaded.name == "kept"


# ---- resource names ----------------------------------------------------------------------------
def test_a_bundles_resources_name_the_bundle_and_the_group_and_are_read_back_as_held():
    added = bundle_resources("ff", 1, {"CPU": 2, "GPU": 0})
    assert added == {"CPU_group_1_ff": 2.0, "CPU_group_ff": 2.0, "bundle_group_1_ff": 1000.0,
                     "bundle_group_ff": 1000.0}
    assert held_bundles({"CPU": 4, **added}) == {("ff", 1)}
    assert in_group({"CPU": 1}, "ff", 1) == {"CPU_group_ff": 1, "CPU_group_1_ff": 1, "bundle_group_1_ff": 0.001}
    assert in_group({}, "ff", -1) == {"bundle_group_ff": 0.001}


# ---- bundles on a node (LeaseScheduler) -----------------------------------------------------------
def scheduler(cpus: float = 2) -> LeaseScheduler:
    ids = (f"w{i}".encode() for i in itertools.count())
    return LeaseScheduler({"CPU": float(cpus)}, lambda: next(ids), max_idle_workers=4)


def lease(sched: LeaseScheduler, resources: dict, owner: str = "tcp://owner", request_id: int = 1) -> bytes:
    out = sched.request(LeaseRequest(owner, b"o", request_id, resources, False))
    sched.validate_state()
    if not out.start:
        return b""
    (worker_id,) = out.start
    sched.worker_ready(worker_id, f"tcp://{worker_id.decode()}", 100)
    sched.validate_state()
    return worker_id


def test_a_bundle_takes_its_resources_out_of_the_pool_and_adds_them_under_the_groups_names():
    sched = scheduler(cpus=2)
    changes = sched.set_bundles([["ff", 0, {"CPU": 1}]])
    sched.validate_state()
    assert not changes.stop and not changes.refused
    assert sched.available["CPU"] == 1.0 and sched.total["CPU_group_0_ff"] == 1.0
    assert held_bundles(sched.total) == {("ff", 0)} and sched.bundles_changed == 1
    worker = lease(sched, in_group({"CPU": 1}, "ff", 0))
    assert sched.workers[worker].state == LEASED and sched.available["CPU_group_0_ff"] == 0.0
    lease(sched, in_group({"CPU": 1}, "ff", 0), request_id=2)  # the bundle is full: it waits
    assert len(sched.pending) == 1 and sched.available["CPU"] == 1.0


def test_a_bundle_waits_for_busy_resources_and_asks_idle_leases_back():
    sched = scheduler(cpus=1)
    lease(sched, {"CPU": 1}, owner="tcp://busy")
    changes = sched.set_bundles([["ff", 0, {"CPU": 1}]])
    sched.validate_state()
    assert sched.wanted_bundles and not sched.bundles
    assert changes.decisions.recall == {"tcp://busy"}
    (worker,) = sched.workers
    sched.lease_returned(worker)
    sched.validate_state()
    assert ("ff", 0) in sched.bundles and not sched.wanted_bundles


def test_releasing_a_bundle_stops_its_workers_refuses_its_queued_requests_and_frees_the_pool():
    sched = scheduler(cpus=2)
    sched.set_bundles([["ff", 0, {"CPU": 1}]])
    worker = lease(sched, in_group({"CPU": 1}, "ff", 0))
    lease(sched, in_group({"CPU": 1}, "ff", 0), request_id=2)
    changes = sched.set_bundles([])
    sched.validate_state()
    assert changes.stop == [worker] and [r.request_id for r in changes.refused] == [2]
    assert sched.available["CPU"] == 2.0 and sched.total.get("CPU_group_0_ff", 0) == 0
    assert held_bundles(sched.total) == set() and not sched.pending
    sched.worker_died(worker)
    sched.validate_state()
    assert not any("_group_" in name for name in (*sched.total, *sched.available))


def test_a_worker_blocked_in_get_gives_its_bundles_cpus_back():
    sched = scheduler(cpus=1)
    sched.set_bundles([["ff", 0, {"CPU": 1}]])
    parent = lease(sched, in_group({"CPU": 1}, "ff", 0))
    lease(sched, in_group({"CPU": 1}, "ff", 0), request_id=2)
    assert len(sched.pending) == 1
    out = sched.worker_blocked(parent)
    sched.validate_state()
    assert not sched.pending and len(out.start) == 1  # the child's worker starts in the bundle
