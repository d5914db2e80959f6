"""Ray's `ray.util` subset: `list_named_actors`, `ActorPool`, `queue.Queue` (more to come:
placement groups). Also the engine's own helpers (handler_errors, process_tools, ...): the
Ray-facing names are imported on first use, so a process importing a helper does not pay for
asyncio (queue.py) and the API."""

import importlib


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


__all__ = ["list_named_actors", "ActorPool", "queue", "scheduling_strategies"]
