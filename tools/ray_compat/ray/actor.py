"""`ray.actor`: ownrun's `engine.actor` under Ray's name (renaming only)."""

from ownrun.engine.actor import *  # noqa: F401,F403
from ownrun.engine.actor import ActorClass, ActorHandle, ActorMethod, exit_actor  # noqa: F401


def __getattr__(name):
    # A marker, not AttributeError: Ray's test_actor.py imports one such name at its top, and
    # only the test that uses it should fail.
    if name.startswith("__"):
        raise AttributeError(name)
    from ._internals import Marker, MissingInOwnrun, UsesRayInternals

    return Marker(f"ray.actor.{name}", UsesRayInternals if name.startswith("_") else MissingInOwnrun)
