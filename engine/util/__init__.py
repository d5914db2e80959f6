"""Ray's `ray.util` subset: `list_named_actors`, `ActorPool`, `queue.Queue` (more to come:
placement groups)."""

from . import queue, scheduling_strategies
from .actor_pool import ActorPool


def list_named_actors(all_namespaces: bool = False) -> list:
    """The names of the live named actors (see `engine.api.list_named_actors`)."""
    from ..api import list_named_actors as names  # the API imports util: not at import time

    return names(all_namespaces)


__all__ = ["list_named_actors", "ActorPool", "queue", "scheduling_strategies"]
