"""`ray.util.actor_pool`: ownrun's `engine.util.actor_pool` (renaming only)."""

from ownrun.engine.util.actor_pool import ActorPool  # noqa: F401
