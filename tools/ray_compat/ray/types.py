"""`ray.types`: the ObjectRef type (renaming only)."""

from ownrun.engine import ObjectRef  # noqa: F401
