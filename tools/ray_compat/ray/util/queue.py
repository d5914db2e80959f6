"""`ray.util.queue`: ownrun's `engine.util.queue` (renaming only)."""

from ownrun.engine.util.queue import *  # noqa: F401,F403
from ownrun.engine.util.queue import Empty, Full, Queue  # noqa: F401
