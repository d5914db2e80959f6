"""Ray's `ray.actor` names: the actor class and handle types and `exit_actor`."""

from .api import ActorClass, ActorHandle, ActorMethod, exit_actor

__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "exit_actor"]
