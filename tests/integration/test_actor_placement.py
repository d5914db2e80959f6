"""Where actors are placed, with Ray's defaults (issue 12, item 13): an actor that asks for
no resources needs a CPU on a node to be placed there, and holds none while it runs."""

from __future__ import annotations

from conftest import NODE_DEATH_TIMEOUT, add_node_ready
from ownrun import engine


# ---- item 13: a default actor needs a CPU to be placed, none to run ------------------------------------
@engine.remote
class Where:
    def node_id(self):
        return engine.get_runtime_context().node_id


def test_default_actor_is_not_placed_on_a_node_without_cpus():
    assert not engine.is_initialized(), "this test starts its own cluster"
    info = engine.init(num_cpus=0, node_death_timeout=NODE_DEATH_TIMEOUT)
    try:
        cpu_node = add_node_ready(num_cpus=1)
        actors = [Where.remote() for _ in range(3)]  # more than its CPUs: they hold none
        assert set(engine.get([a.node_id.remote() for a in actors], timeout=60)) == {cpu_node}
        assert cpu_node != info["node_id"]
    finally:
        engine.shutdown()


def test_actors_created_right_after_add_node_spread_to_the_new_node():
    # add_node returns once the other nodes' daemons know the new node (not only the head), so
    # default actors created at once are spread over both, as in Ray.
    assert not engine.is_initialized(), "this test starts its own cluster"
    info = engine.init(num_cpus=1, node_death_timeout=NODE_DEATH_TIMEOUT)
    try:
        new_node = engine.cluster.add_node(num_cpus=1)
        actors = [Where.remote() for _ in range(10)]
        assert set(engine.get([a.node_id.remote() for a in actors], timeout=60)) == {info["node_id"], new_node}
    finally:
        engine.shutdown()
