"""Task and actor scheduling strategies with Ray's names (issue 12): "SPREAD" and
NodeAffinitySchedulingStrategy(node_id, soft); what ownrun does not take is refused naming it."""

from __future__ import annotations

import pytest
from conftest import NODE_DEATH_TIMEOUT
from ownrun import engine
from ownrun.engine.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@engine.remote
def node_of(_=None):
    return engine.get_runtime_context().get_node_id()


@pytest.fixture(scope="module")
def two_nodes():
    info = engine.init(num_cpus=2, node_death_timeout=NODE_DEATH_TIMEOUT)
    try:
        yield info["node_id"], engine.cluster.add_node(num_cpus=2, resources={"only_second": 1})
    finally:
        engine.shutdown()


def test_hard_node_affinity_runs_every_task_on_that_node(two_nodes):
    first, second = two_nodes
    for target in (second, first):
        pinned = node_of.options(scheduling_strategy=NodeAffinitySchedulingStrategy(target, soft=False))
        assert set(engine.get([pinned.remote(i) for i in range(12)], timeout=60)) == {target}


def test_soft_node_affinity_prefers_the_node_and_falls_back_when_it_is_unknown(two_nodes):
    """As in Ray: tasks wait for the named node while it is busy (more tasks than its CPUs,
    its workers still starting), and go elsewhere only if it is unknown (or dead, or lacks
    what they need: tests/unit/test_spillback.py)."""
    first, second = two_nodes
    soft = node_of.options(scheduling_strategy=NodeAffinitySchedulingStrategy(second, soft=True))
    assert engine.get([soft.remote(i) for i in range(6)], timeout=60) == [second] * 6
    gone = node_of.options(scheduling_strategy=NodeAffinitySchedulingStrategy("no-such-node", soft=True))
    assert engine.get(gone.remote(), timeout=60) in (first, second)


def test_hard_node_affinity_to_an_unknown_node_or_one_lacking_resources_is_unschedulable(two_nodes):
    first, _second = two_nodes
    with pytest.raises(engine.TaskUnschedulableError, match="no-such-node"):
        node_of.options(scheduling_strategy=NodeAffinitySchedulingStrategy("no-such-node", soft=False)).remote()
    lacking = node_of.options(resources={"only_second": 1},
                              scheduling_strategy=NodeAffinitySchedulingStrategy(first, soft=False))
    with pytest.raises(engine.TaskUnschedulableError, match="NodeAffinitySchedulingStrategy"):
        engine.get(lacking.remote(), timeout=60)


def test_spread_asks_each_node_in_turn(two_nodes):
    spread = node_of.options(scheduling_strategy="SPREAD")
    assert set(engine.get([spread.remote(i) for i in range(8)], timeout=60)) == set(two_nodes)


@engine.remote
class Where:
    def node_id(self):
        return engine.get_runtime_context().get_node_id()


def test_actors_take_node_affinity_and_spread(two_nodes):
    first, second = two_nodes
    for target in (second, first):
        for soft in (False, True):
            a = Where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(target, soft=soft)).remote()
            assert engine.get(a.node_id.remote(), timeout=60) == target
    spread = [Where.options(num_cpus=0.5, scheduling_strategy="SPREAD").remote() for _ in range(4)]
    assert set(engine.get([a.node_id.remote() for a in spread], timeout=60)) == {first, second}
    with pytest.raises(engine.TaskUnschedulableError, match="no-such-node"):
        Where.options(scheduling_strategy=NodeAffinitySchedulingStrategy("no-such-node", soft=False)).remote()
    lacking = Where.options(resources={"only_second": 1},
                            scheduling_strategy=NodeAffinitySchedulingStrategy(first, soft=False)).remote()
    with pytest.raises(engine.ActorDiedError, match="NodeAffinitySchedulingStrategy"):
        engine.get(lacking.node_id.remote(), timeout=60)


def test_unknown_strategies_are_refused_naming_the_option(two_nodes):
    with pytest.raises(ValueError, match="scheduling_strategy"):
        Where.options(scheduling_strategy="PACK")
    with pytest.raises(ValueError, match="scheduling_strategy"):
        node_of.options(scheduling_strategy="PACK")
    assert engine.get(node_of.options(scheduling_strategy="DEFAULT").remote(), timeout=60) in two_nodes


def test_wait_with_fetch_local_copies_a_remote_object_here_and_without_it_does_not(two_nodes):
    import numpy as np

    _first, second = two_nodes

    def local_objects():
        from ownrun.engine import debug

        return debug.node_stats()["store"]["num_objects"]

    on_second = engine.remote(lambda: np.zeros(2_000_000)).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(second, soft=False))
    before = local_objects()
    ref = on_second.remote()
    assert engine.wait([ref], fetch_local=False, timeout=60) == ([ref], [])
    assert local_objects() == before  # ready where it is, on the other node
    assert engine.wait([ref], timeout=60) == ([ref], [])  # fetch_local=True: Ray's default
    assert local_objects() == before + 1
    assert engine.get(ref, timeout=60).shape == (2_000_000,)
