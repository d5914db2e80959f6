"""The cluster as tests and failure experiments see it: list, add and kill nodes
(`engine.cluster.nodes/add_node/kill_node/node_ids`).

Owns `nodes()` (the head's view: id, address, alive, resources, store usage) and, for the
embedded cluster started by `engine.init()`, `add_node` and `kill_node` (SIGKILL of the
daemon, its workers and its store, as a machine loss). Thread-safe.
Failures: `ValueError` naming an unknown node; `ClusterError` when there is no embedded
cluster; `RuntimeNotInitializedError` before `engine.init()`.
"""

from __future__ import annotations

import time

from .. import errors, object_ref
from ..rpc import protocol as P
from . import embedded


def _core():
    core = object_ref.current_worker()
    if core is None:
        raise errors.RuntimeNotInitializedError("ownrun is not initialized: call engine.init() first")
    return core


def _embedded() -> embedded.LocalCluster:
    cluster = embedded.current()
    if cluster is None:
        raise errors.ClusterError("no embedded cluster: add_node/kill_node work on the cluster "
                                  "started by engine.init() in this process")
    return cluster


def nodes() -> list[dict]:
    """Every node the head knows: node_id, address, alive, resources, available, store."""
    core = _core()
    view = core.call(core.head_address, P.NODE_LIST)
    return [{"node_id": node_id, "address": n["address"], "alive": n["alive"],
             "resources": n["total"], "available": n["available"], "store": n.get("store", {})}
            for node_id, n in sorted(view.items())]


def add_node(num_cpus: float = 1, resources: dict | None = None) -> str:
    """Starts a node daemon on this machine; returns its node id once it is registered and
    the other live nodes' daemons know it (so work submitted next may be placed there: they
    learn the cluster view from the head's answers to their heartbeats)."""
    cluster = _embedded()
    node_id = cluster.add_node(num_cpus, dict(resources or {}))
    core = _core()
    deadline = time.monotonic() + 10
    view: dict = {}
    while time.monotonic() < deadline:  # the head learns of it from its first heartbeat
        view = core.call(core.head_address, P.NODE_LIST)
        if node_id in view:
            break
        time.sleep(0.02)
    daemons = [n["address"] for other, n in view.items() if other != node_id and n.get("alive", True)]
    while daemons and time.monotonic() < deadline:
        daemons = [d for d in daemons if not _knows(core, d, node_id)]
        if daemons:
            time.sleep(0.02)
    return node_id


def _knows(core, daemon: str, node_id: str) -> bool:
    try:
        return node_id in core.call(daemon, P.NODE_STATS).get("nodes_known", ())
    except errors.EngineError:  # that node died meanwhile: it need not know
        return True


def kill_node(node_id: str) -> None:
    """SIGKILLs a node: its daemon, workers and store vanish at once."""
    _embedded().kill_node(node_id)


def node_ids() -> list[str]:
    return list(_embedded().node_ids)
