"""`ray.util.placement_group`: ownrun's `engine.util.placement_group` (renaming only)."""

from ownrun.engine.util.placement_group import (  # noqa: F401
    PlacementGroup,
    PlacementGroupID,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
