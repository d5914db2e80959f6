"""The default store size of an embedded cluster is split among its nodes: on one machine the
stores add up to the machine's default, not one default per node."""

from ownrun import engine
from ownrun.engine.cluster import processes
from ownrun.engine.util import state


def test_default_store_is_split_among_the_nodes_of_an_embedded_cluster():
    assert not engine.is_initialized(), "this test starts its own cluster"
    engine.init(num_cpus=0, num_nodes=3, prestart_workers=False)
    try:
        capacities = [node["store_capacity"] for node in state.list_nodes()]
    finally:
        engine.shutdown()
    machine = processes.default_object_store_memory()
    assert len(capacities) == 3 and len(set(capacities)) == 1
    assert machine * 0.9 <= sum(capacities) <= machine
