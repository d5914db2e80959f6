"""`ray.remote_function`: the remote-function type (renaming only)."""

from ownrun.engine import RemoteFunction  # noqa: F401


def __getattr__(name):
    raise AttributeError(f"module 'ray.remote_function' has no attribute {name!r} (ownrun has no such API)")
