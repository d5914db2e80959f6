"""Ray's `ray.util.scheduling_strategies` subset: `NodeAffinitySchedulingStrategy`.

A task's or actor's `scheduling_strategy` option takes `"DEFAULT"` (or None), `"SPREAD"` (each task asks
the next live node in turn for its lease; a busy node may still send it elsewhere) or a
`NodeAffinitySchedulingStrategy(node_id, soft)`: `soft=False` runs it on that node only (its
lease request is never spilled; a node that is unknown, dead or lacks the resources fails the
task with `TaskUnschedulableError`), `soft=True` prefers that node (any other when it is
unknown, dead or busy). Actors take the same, for where they are created and restarted (a
hard affinity to a node that is not alive fails the actor). Anything else (placement groups)
is refused, naming the option. Plain values; thread-safe.
"""

from __future__ import annotations


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
    if strategy is None or strategy in ("DEFAULT", "SPREAD") or isinstance(strategy, NodeAffinitySchedulingStrategy):
        return
    raise ValueError(f"{what}: option scheduling_strategy={strategy!r} is not supported by ownrun "
                     "('DEFAULT', 'SPREAD' or NodeAffinitySchedulingStrategy are)")
