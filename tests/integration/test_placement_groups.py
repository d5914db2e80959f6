"""Placement groups with Ray's API (issue 12): reserve bundles, run tasks and actors in them,
remove them, lose a node that holds one. Real head, daemons and workers."""

from __future__ import annotations

import time

import pytest
from conftest import NODE_DEATH_TIMEOUT, wait_for
from ownrun import engine
from ownrun.engine.util import (
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from ownrun.engine.util.scheduling_strategies import PlacementGroupSchedulingStrategy


@engine.remote(num_cpus=1)
def where(_=None):
    pg = get_current_placement_group()
    return engine.get_runtime_context().get_node_id(), pg.id.hex() if pg else None


@engine.remote(num_cpus=1)
class Member:
    def node_and_group(self):
        pg = get_current_placement_group()
        return engine.get_runtime_context().get_node_id(), pg.id.hex() if pg else None

    def child_group(self):
        return engine.get(where.remote())[1]


def in_bundle(pg, index: int):
    return PlacementGroupSchedulingStrategy(pg, index)


@pytest.fixture
def start_cluster():
    """Starts the test's own cluster (`engine.init` settings); stops it after the test."""
    started = []

    def start(**settings):
        engine.init(**settings)
        started.append(settings)

    yield start
    if started:
        engine.shutdown()


@pytest.fixture
def one_node(start_cluster):
    start_cluster(num_cpus=2)


def test_a_group_is_created_and_its_tasks_run_in_it_with_the_groups_resources(one_node):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK", name="pair")
    assert engine.get(pg.ready(), timeout=60) == pg
    assert pg.wait(10) and placement_group_table(pg)["state"] == "CREATED"
    assert get_placement_group("pair") == pg
    results = engine.get([where.options(scheduling_strategy=in_bundle(pg, i)).remote() for i in range(2)], timeout=60)
    assert {group for _, group in results} == {pg.id.hex()}
    assert engine.get(where.options(num_cpus=0).remote(), timeout=60)[1] is None  # outside it: none (no CPU left)
    cluster = engine.cluster_resources()
    assert cluster["CPU"] == 2.0 and cluster[f"CPU_group_{pg.id.hex()}"] == 2.0
    wait_for(lambda: engine.available_resources().get("CPU", 0) == 0, 30, message="the bundles to hold both CPUs")


def test_a_request_no_bundle_can_hold_and_a_bad_index_are_refused_at_remote(one_node):
    pg = placement_group([{"CPU": 1}])
    with pytest.raises(ValueError, match="cannot fit into any bundles"):
        where.options(num_cpus=2, scheduling_strategy=in_bundle(pg, 0)).remote()
    with pytest.raises(ValueError, match="out of range"):
        where.options(scheduling_strategy=in_bundle(pg, 3)).remote()
    with pytest.raises(TypeError, match="PlacementGroup"):
        where.options(placement_group="not a group")
    with pytest.raises(ValueError, match="strategy"):
        placement_group([{"CPU": 1}], strategy="TIGHT")
    remove_placement_group(pg)


def test_a_group_that_fits_no_node_stays_pending_and_can_be_removed(one_node):
    pg = placement_group([{"CPU": 2}, {"CPU": 2}], strategy="STRICT_PACK")
    assert not pg.wait(0.5)
    assert placement_group_table(pg)["state"] == "PENDING"
    remove_placement_group(pg)
    assert placement_group_table(pg)["state"] == "REMOVED"
    fits = placement_group([{"CPU": 2}])  # nothing is left held by the removed one
    assert fits.wait(60)


def test_removing_a_group_kills_its_actors_and_frees_its_resources(one_node):
    pg = placement_group([{"CPU": 1}])
    actor = Member.options(placement_group=pg, placement_group_bundle_index=0).remote()
    assert engine.get(actor.node_and_group.remote(), timeout=60)[1] == pg.id.hex()
    remove_placement_group(pg)
    with pytest.raises(engine.ActorDiedError, match="placement group was removed"):
        engine.get(actor.node_and_group.remote(), timeout=60)
    wait_for(lambda: engine.available_resources().get("CPU") == 2.0
             and not any("_group_" in k for k in engine.cluster_resources()), 30, message="the bundle to be released")


def test_a_task_running_in_a_removed_group_and_one_submitted_after_fail_as_removed(one_node, tmp_path):
    started = tmp_path / "started"

    @engine.remote(num_cpus=1, max_retries=3)
    def long_task(marker):
        open(marker, "w").close()
        time.sleep(120)  # stopped by the group's removal long before

    pg = placement_group([{"CPU": 1}])
    running = long_task.options(scheduling_strategy=in_bundle(pg, 0)).remote(str(started))
    wait_for(started.exists, 60, message="the task to start in its bundle")
    remove_placement_group(pg)
    with pytest.raises(engine.TaskPlacementGroupRemoved, match="placement group was removed"):
        engine.get(running, timeout=60)  # not retried into a group that is gone
    with pytest.raises(engine.TaskPlacementGroupRemoved):
        engine.get(where.options(scheduling_strategy=in_bundle(pg, 0)).remote(), timeout=60)


def test_child_tasks_are_captured_in_the_group_only_when_asked(start_cluster):
    start_cluster(num_cpus=4)
    pg = placement_group([{"CPU": 2}, {"CPU": 1}])  # a child of bundle 0's actor fits beside it
    assert pg.wait(60)
    capturing = Member.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0, True)).remote()
    plain = Member.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 1)).remote()
    assert engine.get(capturing.child_group.remote(), timeout=60) == pg.id.hex()
    assert engine.get(plain.child_group.remote(), timeout=60) is None


def test_a_group_created_in_an_actor_goes_with_it_unless_detached(start_cluster):
    start_cluster(num_cpus=2)

    @engine.remote(num_cpus=0)
    class Creator:
        def make(self, detached):
            pg = placement_group([{"CPU": 1}], lifetime="detached" if detached else None)
            return pg.id.hex()

    creator = Creator.remote()
    owned, detached = engine.get([creator.make.remote(False), creator.make.remote(True)], timeout=60)
    engine.kill(creator)
    states = lambda: {k: v["state"] for k, v in placement_group_table().items()}  # noqa: E731
    wait_for(lambda: states().get(owned) == "REMOVED", 30, message="the creator's group to be removed")
    assert states()[detached] in ("PENDING", "CREATED")


def test_strict_spread_uses_one_node_per_bundle_and_a_lost_bundle_is_placed_again(start_cluster):
    start_cluster(num_cpus=1, node_death_timeout=NODE_DEATH_TIMEOUT)
    cluster = engine.cluster
    first = engine.get_runtime_context().get_node_id()
    second = cluster.add_node(num_cpus=1, resources={})
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    assert pg.wait(60)
    nodes = placement_group_table(pg)["bundles_to_node_id"]
    assert set(nodes.values()) == {first, second}
    for index, node in nodes.items():
        ran_on, _ = engine.get(where.options(scheduling_strategy=in_bundle(pg, index)).remote(), timeout=60)
        assert ran_on == node
    third = cluster.add_node(num_cpus=1, resources={})
    cluster.kill_node(second)
    wait_for(lambda: placement_group_table(pg)["state"] == "CREATED"
             and third in placement_group_table(pg)["bundles_to_node_id"].values(), 60,
             message="the lost bundle to be held on the new node")
    lost_index = next(i for i, n in nodes.items() if n == second)
    ran_on, _ = engine.get(where.options(scheduling_strategy=in_bundle(pg, lost_index)).remote(), timeout=60)
    assert ran_on == third


def test_a_task_blocked_in_get_gives_its_bundles_cpu_to_its_captured_child(start_cluster):
    start_cluster(num_cpus=1)

    @engine.remote(num_cpus=1)
    def child():
        return 3

    @engine.remote(num_cpus=1)
    def parent():
        return engine.get(child.remote())

    pg = placement_group([{"CPU": 1}])  # every CPU of the node: the child must get the parent's
    for index in (-1, 0):
        strategy = PlacementGroupSchedulingStrategy(pg, index, placement_group_capture_child_tasks=True)
        assert engine.get(parent.options(scheduling_strategy=strategy).remote(), timeout=60) == 3
