"""Ray's `ray.util.scheduling_strategies` subset: `NodeAffinitySchedulingStrategy`.

A task's or actor's `scheduling_strategy` option takes `"DEFAULT"` (or None), `"SPREAD"` (each
asks the next live node in turn for its lease; a busy node may still send it elsewhere) or a
`NodeAffinitySchedulingStrategy(node_id, soft)`: `soft=False` runs it on that node only (its
lease request is never spilled; a node that is unknown, dead or lacks the resources fails the
task with `TaskUnschedulableError`), `soft=True` prefers that node (any other when it is
unknown, dead or busy). Actors take the same, for where they are created and restarted (a
hard affinity to a node that is not alive fails the actor).
`PlacementGroupSchedulingStrategy` (util/placement_group.py) puts it in a placement group's
bundle. Anything else is refused, naming the option. `place_on` turns a strategy into where the lease is asked
for ([daemon, pinned]), from the head's list of live nodes (kept at most 1 s on the core
worker). Thread-safe (a stale list is only a worse choice; a dead node fails the task).
"""

from __future__ import annotations

import time

from .. import errors
from ..rpc import protocol as P


class NodeAffinitySchedulingStrategy:
    """Run on node `node_id` (a hex string, as `get_runtime_context().get_node_id()` gives)."""

    def __init__(self, node_id: str, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False):
        if not isinstance(node_id, str) or not node_id:
            raise TypeError(f"NodeAffinitySchedulingStrategy: node_id must be a node id string, got {node_id!r}")
        if _spill_on_unavailable or _fail_on_unavailable:
            raise ValueError("NodeAffinitySchedulingStrategy: _spill_on_unavailable/_fail_on_unavailable "
                             "are not supported by ownrun")
        self.node_id = node_id
        self.soft = bool(soft)

    def __repr__(self) -> str:
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"


def check(strategy, what: str) -> None:
    """Raises ValueError naming the option for a strategy ownrun does not take."""
    from .placement_group import PlacementGroupSchedulingStrategy

    if strategy is None or strategy in ("DEFAULT", "SPREAD") or isinstance(
            strategy, (NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy)):
        return
    raise ValueError(f"{what}: option scheduling_strategy={strategy!r} is not supported by ownrun "
                     "('DEFAULT', 'SPREAD', NodeAffinitySchedulingStrategy or PlacementGroupSchedulingStrategy are)")


def place_on(core, strategy, name: str) -> list:
    """[daemon address, pinned, soft] of a task's scheduling strategy: the next live node in
    turn (SPREAD), or the named node (NodeAffinitySchedulingStrategy: pinned unless soft; soft:
    it waits there while the node is busy, as in Ray, and goes elsewhere only if that node
    cannot run it at all or dies)."""
    nodes = live_daemons(core, refresh=False)
    if strategy == "SPREAD":
        if not nodes:
            return [core.daemon_address, False, False]
        core.spread_next = (getattr(core, "spread_next", -1) + 1) % len(nodes)
        return [sorted(nodes.values())[core.spread_next], False, False]
    daemon = nodes.get(strategy.node_id)
    if daemon is None:
        daemon = live_daemons(core, refresh=True).get(strategy.node_id)
    if daemon is None:
        if strategy.soft:
            return [core.daemon_address, False, False]
        raise errors.TaskUnschedulableError(
            f"task {name} cannot be scheduled: NodeAffinitySchedulingStrategy(soft=False) names node "
            f"{strategy.node_id}, which is not alive")
    return [daemon, not strategy.soft, bool(strategy.soft)]


def live_daemons(core, refresh: bool) -> dict:
    """{node id: daemon address} of the live nodes, as the head listed them at most 1 s ago
    (or now, with `refresh`). For scheduling strategies only: not on the plain task path."""
    cached = getattr(core, "live_daemons", None)
    now = time.monotonic()
    if refresh or cached is None or now - cached[0] > 1.0:
        view = core.call(core.head_address, P.NODE_LIST)
        cached = core.live_daemons = (now, {node_id: n["address"] for node_id, n in view.items()
                                            if n.get("alive", True)})
    return cached[1]


def __getattr__(name: str):
    """`PlacementGroupSchedulingStrategy` lives with the placement groups (Ray has it here too)."""
    if name == "PlacementGroupSchedulingStrategy":
        from .placement_group import PlacementGroupSchedulingStrategy

        return PlacementGroupSchedulingStrategy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
