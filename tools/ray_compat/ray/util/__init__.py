"""`ray.util`: ownrun's `engine.util` under Ray's name (renaming only)."""

from ownrun.engine.util import *  # noqa: F401,F403
from ownrun.engine.util import list_named_actors  # noqa: F401


def __getattr__(name):
    raise AttributeError(f"module 'ray.util' has no attribute {name!r} (ownrun has no such API)")
