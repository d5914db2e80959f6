"""Ray's `ray.actor` names: the actor class and handle types and `exit_actor`."""

from .api import ActorClass, ActorHandle, ActorMethod, exit_actor
from .errors import ActorClassInheritanceException

__all__ = ["ActorClass", "ActorClassInheritanceException", "ActorHandle", "ActorMethod", "exit_actor"]
