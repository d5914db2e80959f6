"""`ray.util.scheduling_strategies`: ownrun's `engine.util.scheduling_strategies` (renaming only)."""

from ownrun.engine.util.placement_group import PlacementGroupSchedulingStrategy  # noqa: F401
from ownrun.engine.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: F401


def __getattr__(name):
    # NodeLabelSchedulingStrategy, ...: not in ownrun.
    from .._internals import Marker, MissingInOwnrun

    if name.startswith("__"):
        raise AttributeError(name)
    return Marker(f"ray.util.scheduling_strategies.{name}", MissingInOwnrun)
