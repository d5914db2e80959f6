"""Ray's `ray.util` subset: `list_named_actors`, `ActorPool`, `queue.Queue`, placement groups
(`placement_group`, `remove_placement_group`, `get_placement_group`, `placement_group_table`,
`get_current_placement_group`). Also the engine's own helpers (handler_errors, process_tools, ...): the
Ray-facing names are imported on first use, so a process importing a helper does not pay for
asyncio (queue.py) and the API."""

import importlib

# Light (no API import): bound eagerly so `util.placement_group` is the function, as in Ray (the
# module of that name would otherwise shadow it once imported).
from .placement_group import (  # noqa: F401
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)


def list_named_actors(all_namespaces: bool = False) -> list:
    """The names of the live named actors (see `engine.api.list_named_actors`)."""
    from ..api import list_named_actors as names  # the API imports util: not at import time

    return names(all_namespaces)


def __getattr__(name: str):
    if name == "ActorPool":
        from .actor_pool import ActorPool

        return ActorPool
    if name in ("queue", "scheduling_strategies"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["list_named_actors", "ActorPool", "queue", "scheduling_strategies", "placement_group",
           "remove_placement_group", "get_placement_group", "placement_group_table",
           "get_current_placement_group", "PlacementGroup"]
