"""Recovery at scale on a real multi-node embedded cluster (issue 11 §5).

Zero-CPU actors spread over the nodes instead of piling up on their creator's node, and the
actors of a dead node come back together, not one after another. Each test starts its own
cluster; nodes are added with `conftest.add_node_ready`, which waits until the driver's node
daemon can place work on them. Timings are printed (run with -s), never asserted.
"""

from __future__ import annotations

import collections
import time

from conftest import add_node_ready as add_node
from ownrun import engine
from ownrun.engine import cluster
from ownrun.engine.api import _core
from ownrun.engine.rpc import protocol as P


class Pinger:
    def node(self) -> str:
        return engine.get_runtime_context().node_id


def test_zero_cpu_actors_spread_over_the_nodes(head_node):
    add_node(num_cpus=1)
    add_node(num_cpus=1)
    zero_cpu = engine.remote(num_cpus=0)(Pinger)
    default = engine.remote(Pinger)  # a default actor needs no CPU to run either
    actors = [zero_cpu.remote() for _ in range(15)] + [default.remote() for _ in range(15)]
    placed = collections.Counter(engine.get([a.node.remote() for a in actors], timeout=120))
    assert len(placed) == 3 and min(placed.values()) >= 5, placed


def test_actors_of_a_dead_node_all_restart_elsewhere(head_node):
    victim = add_node(num_cpus=1, resources={"spot": 100})
    restartable = engine.remote(num_cpus=0, resources={"spot": 1}, max_restarts=-1, max_task_retries=-1)(Pinger)
    actors = [restartable.remote() for _ in range(60)]
    assert set(engine.get([a.node.remote() for a in actors], timeout=120)) == {victim}
    survivor = add_node(num_cpus=1, resources={"spot": 100})

    core = _core()
    heard = []
    on_node_died = core._handlers[P.NODE_DIED]

    def timed(h, frames):  # when the driver hears of the death: the restarts start there
        heard.append(time.monotonic())
        on_node_died(h, frames)

    core._handlers[P.NODE_DIED] = timed
    try:
        cluster.kill_node(victim)
        refs = [a.node.remote() for a in actors]
        pending, answered = refs, []
        while pending:
            ready, pending = engine.wait(pending, num_returns=1, timeout=120)
            assert ready, "an actor of the dead node never answered again"
            answered.append(time.monotonic())
        assert set(engine.get(refs)) == {survivor}
    finally:
        core._handlers[P.NODE_DIED] = on_node_died
    print(f"\n60 actors back {answered[-1] - heard[0]:.2f} s after the driver heard of the node's death "
          f"(first answer after {answered[0] - heard[0]:.2f} s)")
