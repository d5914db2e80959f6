"""Ray's `ray.util.placement_group`: gang-reserve resources across nodes, then run in them.

`placement_group(bundles, strategy)` asks the head to reserve each bundle (a resource dict)
on a node chosen by the strategy (PACK, SPREAD, STRICT_PACK, STRICT_SPREAD; the head's
`placement_groups.py` decides, the nodes' daemons hold them). It returns at once: the group
is PENDING until every bundle is held (`pg.ready()` is a ref that resolves then, `pg.wait(t)`
waits for it), and stays so while no node fits (as in Ray: no error, no timeout).

A task or actor runs in a group with `scheduling_strategy=PlacementGroupSchedulingStrategy(pg,
bundle_index)` (or the `placement_group=`/`placement_group_bundle_index=` options): it asks
for its resources out of that bundle (-1: any bundle), under the names the bundle's node
holds them (`placement_resources.in_group`), so it runs only where the bundle is and only
within it. A request that no bundle could ever satisfy is refused at `.remote()`, as Ray
does. With `placement_group_capture_child_tasks=True` the tasks and actors it starts go in
the same group unless they say otherwise; `get_current_placement_group()` inside it gives
the group.

Removing a group (`remove_placement_group`, or the exit of the process that created it,
unless `lifetime="detached"`) releases its bundles: the workers running in it are stopped
(their tasks fail or retry as after any worker death, its actors die) and requests queued
for it fail. A bundle on a node that dies is placed again (RESCHEDULING).

Failures: ValueError for bad bundles, a bad strategy, a name in use, a bundle index out of
range or a request that fits no bundle; the head's errors otherwise. Thread-safe.
"""

from __future__ import annotations

import os

from ..placement_resources import in_group
from ..rpc import protocol as P


class PlacementGroupID:
    """A placement group's id (18 random bytes, as Ray's)."""

    __slots__ = ("_id",)

    def __init__(self, binary: bytes):
        if not isinstance(binary, bytes):
            raise TypeError(f"PlacementGroupID takes bytes, got {type(binary).__name__}")
        self._id = binary

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def __eq__(self, other) -> bool:
        return isinstance(other, PlacementGroupID) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        return f"PlacementGroupID({self.hex()})"


class PlacementGroup:
    """A handle to a placement group: its id and bundles (picklable; equal by id)."""

    def __init__(self, id: PlacementGroupID, bundle_cache: list | None = None):
        self.id = id
        self._bundles = [dict(b) for b in bundle_cache] if bundle_cache is not None else None

    @property
    def bundle_specs(self) -> list:
        """The bundles' resource dicts, in bundle order."""
        if self._bundles is None:
            view = placement_group_table(self)
            if not view:
                raise ValueError(f"placement group {self.id.hex()} is unknown to the cluster")
            self._bundles = [dict(view["bundles"][i]) for i in sorted(view["bundles"])]
        return self._bundles

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self):
        """An ObjectRef that resolves to this group once all its bundles are reserved (a
        no-resource task run in bundle 0, as in Ray)."""
        return _ready_task().options(
            scheduling_strategy=PlacementGroupSchedulingStrategy(self, 0)).remote(self)

    def wait(self, timeout_seconds: float | int = 30) -> bool:
        """True once the group is created, False if it is not within `timeout_seconds`."""
        from .. import api

        ready, _ = api.wait([self.ready()], timeout=timeout_seconds)
        return bool(ready)

    def __eq__(self, other) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __reduce__(self):
        return PlacementGroup, (self.id, self._bundles)

    def __repr__(self) -> str:
        return f"PlacementGroup(id={self.id.hex()}, bundles={self._bundles})"


class PlacementGroupSchedulingStrategy:
    """Run in bundle `placement_group_bundle_index` of `placement_group` (-1: any bundle)."""

    def __init__(self, placement_group: PlacementGroup, placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks: bool | None = None):
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    def __repr__(self) -> str:
        return (f"PlacementGroupSchedulingStrategy({self.placement_group!r}, "
                f"{self.placement_group_bundle_index})")


_READY = None


def _ready_task():
    global _READY
    if _READY is None:
        from .. import api

        def bundle_reservation_check(pg):
            return pg

        _READY = api.remote(num_cpus=0)(bundle_reservation_check)
    return _READY


def _core():
    from .. import api

    return api._core_or_init()


# ---- the API -----------------------------------------------------------------------------------------
def placement_group(bundles: list, strategy: str = "PACK", name: str = "", lifetime: str | None = None,
                    _soft_target_node_id: str | None = None, bundle_label_selector=None) -> PlacementGroup:
    """Asks for the bundles to be reserved (returns at once; see `PlacementGroup.ready`)."""
    from ..head.placement_groups import check_group

    check_group(bundles, strategy)
    if not isinstance(name, str):
        raise TypeError(f"placement group name must be a string, got {type(name).__name__}")
    if lifetime not in (None, "detached"):
        raise ValueError(f"placement group lifetime must be None or 'detached', got {lifetime!r}")
    if _soft_target_node_id is not None or bundle_label_selector:
        raise ValueError("placement_group: _soft_target_node_id and bundle_label_selector are not "
                         "supported by ownrun")
    from .. import api

    core = _core()
    pg_id = os.urandom(18)
    core.call(core.head_address, P.PG_CREATE, pg_id, [dict(b) for b in bundles], strategy, name,
              api._namespace(core) or "", lifetime == "detached")
    return PlacementGroup(PlacementGroupID(pg_id), bundles)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Releases the group's bundles; what runs in it is stopped (see the module's docstring)."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group takes a PlacementGroup, got {type(placement_group).__name__}")
    core = _core()
    core.call(core.head_address, P.PG_REMOVE, placement_group.id.binary())


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live group of that name in this job's namespace; ValueError if there is none."""
    from .. import api

    core = _core()
    view = core.call(core.head_address, P.PG_TABLE, placement_group_name, api._namespace(core) or "")
    if view is None:
        raise ValueError(f"Failed to look up placement group with name: {placement_group_name}")
    return _from_view(view)


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict:
    """The head's view of one group (`{}` if unknown) or {group hex id: view} of all of them."""
    core = _core()
    if placement_group is None:
        return core.call(core.head_address, P.PG_TABLE, None, "")
    return core.call(core.head_address, P.PG_TABLE, placement_group.id.binary(), "") or {}


def get_current_placement_group() -> PlacementGroup | None:
    """The group the calling task or actor runs in; None in the driver or outside a group."""
    from ..worker.context import task_context

    current = task_context.placement_group
    return current[0] if current is not None else None


def _from_view(view: dict) -> PlacementGroup:
    bundles = [dict(view["bundles"][i]) for i in sorted(view["bundles"])]
    return PlacementGroup(PlacementGroupID(bytes.fromhex(view["placement_group_id"])), bundles)


# ---- how a task or actor asks for resources in a group --------------------------------------------------
def of_options(options: dict):
    """(group, bundle index, capture child tasks) an options dict puts a task or actor in,
    "capture" if it says nothing (the caller's captured group applies), or None (no group)."""
    strategy = options.get("scheduling_strategy")
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        if not isinstance(strategy.placement_group, PlacementGroup):
            raise TypeError("PlacementGroupSchedulingStrategy: placement_group must be a PlacementGroup, "
                            f"got {type(strategy.placement_group).__name__}")
        return (strategy.placement_group, strategy.placement_group_bundle_index,
                bool(strategy.placement_group_capture_child_tasks))
    pg = options.get("placement_group", "default")
    if pg not in (None, "default"):
        if not isinstance(pg, PlacementGroup):
            raise TypeError(f"option placement_group must be a PlacementGroup (or None/'default'), "
                            f"got {type(pg).__name__}")
        if strategy not in (None, "DEFAULT"):
            raise ValueError("placement_group and scheduling_strategy cannot both be given")
        index = options.get("placement_group_bundle_index")
        return pg, -1 if index is None else index, bool(options.get("placement_group_capture_child_tasks"))
    if pg is None or strategy not in (None, "DEFAULT"):
        return None
    return "capture"


def task_extra(placement: tuple) -> list:
    """What a task's extra carries of its group, for the worker's `get_current_placement_group`:
    [group hex, bundles, capture child tasks]."""
    pg, _index, capture = placement
    return [pg.id.hex(), pg.bundle_specs, capture]


def resources_in(placement: tuple, resources: dict, what: str) -> dict:
    """`resources` as asked for in the group's bundle; ValueError if the index is out of range
    or no bundle it may use could hold them (Ray refuses those at submission too)."""
    pg, index, _capture = placement
    if not isinstance(pg, PlacementGroup):
        raise TypeError(f"{what}: placement_group must be a PlacementGroup, got {type(pg).__name__}")
    bundles = pg.bundle_specs
    if not isinstance(index, int) or isinstance(index, bool) or not -1 <= index < len(bundles):
        raise ValueError(f"{what}: placement_group_bundle_index {index!r} is out of range: the group has "
                         f"{len(bundles)} bundles (use 0..{len(bundles) - 1}, or -1 for any)")
    usable = bundles if index < 0 else [bundles[index]]
    if not any(all(b.get(k, 0) >= v - 1e-9 for k, v in resources.items() if v > 0) for b in usable):
        raise ValueError(f"Cannot schedule {what} with the placement group because the resource request "
                         f"{resources} cannot fit into any bundles for the placement group, {bundles}.")
    return in_group(resources, pg.id.hex(), index)
