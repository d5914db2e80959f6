"""Starting the engine for an RL run, and where its tasks and actors go.

One node, or a running cluster (`address`, as `ownrun run` jobs on a shared cluster): everything anywhere. `--nodes N` (N >= 2): node 0 (resource `rl_head`) runs the
driver, the Recorder and the owner; nodes 1..N-1 (resource `rl_worker`) run the noise task,
the rollout workers and the aggregators, so killing a worker node never takes the owner and
the noise table's primary copy lives where the rollouts are.

Rollout actors ask for `cpu_share` of a CPU: all of them fit at once on the nodes that run
them (and, with 3+ nodes, on the nodes left after one dies) while each still counts against the
node's CPUs. The owner and Recorder ask for none: they wait most of the time.
Not thread-safe (starts the per-process engine). Failures: engine errors propagate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ownrun import engine

HEAD_RESOURCE = "rl_head"
WORKER_RESOURCE = "rl_worker"
NODE_DEATH_TIMEOUT = 10.0  # s without heartbeats (the engine's default); a killed node is seen at once


@dataclass(frozen=True)
class Placement:
    owner: dict = field(default_factory=dict)  # options of the owner task and the Recorder
    workers: dict = field(default_factory=dict)  # of rollout workers and aggregators
    noise: dict = field(default_factory=dict)  # of the noise task
    worker_cpus: float = 1.0  # CPUs of the nodes that run rollout workers
    survivor_cpus: float = 1.0  # the same after one worker node dies (multi-node)

    def worker_options(self, workers: int) -> dict:
        return {**self.workers, "num_cpus": cpu_share(self.survivor_cpus, workers)}


def cpu_share(cpus: float, workers: int) -> float:
    """What each of `workers` rollout actors asks for: an equal share of `cpus`, at most 1."""
    return min(1.0, math.floor(cpus / max(1, workers) * 1e4) / 1e4)


def current_placement() -> Placement:
    """Everything anywhere on the engine this process already has (joined or embedded)."""
    alive = float(sum(n["resources"].get("CPU", 0) for n in engine.cluster.nodes() if n["alive"]))
    return Placement(worker_cpus=alive, survivor_cpus=alive)


def start_engine(nodes: int, num_cpus: float | None, address: str | None = None,
                 node_death_timeout: float | None = None, object_store_memory: int | None = None) -> Placement:
    """Starts an embedded cluster (or joins the one at `address`: everything anywhere)."""
    if address:
        engine.init(address=address)
        return current_placement()
    options: dict = {"node_death_timeout": node_death_timeout or NODE_DEATH_TIMEOUT}
    if object_store_memory is not None:
        options["object_store_memory"] = object_store_memory
    if nodes <= 1:
        engine.init(num_cpus=num_cpus, **options)
        return current_placement()  # the node's CPUs: as given, or the CPUs this process may use
    engine.init(num_cpus=num_cpus, resources={HEAD_RESOURCE: 1000}, **options)
    cpus = float(engine.cluster_resources()["CPU"])
    for _ in range(nodes - 1):
        engine.cluster.add_node(num_cpus=cpus, resources={WORKER_RESOURCE: 1000})
    on_workers = {"resources": {WORKER_RESOURCE: 1}}
    return Placement(owner={"resources": {HEAD_RESOURCE: 1}}, workers=on_workers, noise=on_workers,
                     worker_cpus=cpus * (nodes - 1), survivor_cpus=cpus * max(1, nodes - 2))
