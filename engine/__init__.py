"""ownrun's engine: a distributed-futures runtime built on ownership.

    from ownrun import engine

    engine.init()

    @engine.remote
    def square(x):
        return x * x

    print(engine.get([square.remote(i) for i in range(4)]))

The API keeps Ray Core's names and semantics (DESIGN.md §8).
"""

from . import cluster, kv
from .api import (
    ActorClass,
    ActorHandle,
    RemoteFunction,
    cancel,
    get,
    get_actor,
    get_runtime_context,
    init,
    is_initialized,
    kill,
    method,
    put,
    remote,
    session_dir,
    shutdown,
    wait,
)
from .errors import (
    ActorDiedError,
    EngineError,
    GetTimeoutError,
    NodeUnreachableError,
    ObjectFreedError,
    ObjectLostError,
    ObjectReconstructionFailedError,
    ObjectStoreFullError,
    OwnerDiedError,
    RuntimeNotInitializedError,
    SerializationError,
    TaskCancelledError,
    TaskError,
    WorkerCrashedError,
)
from .object_ref import ObjectRef

nodes = cluster.nodes


def timeline(path: str | None = None, address: str | None = None, cluster_key: str | None = None) -> dict:
    """Writes a Chrome trace of the cluster's recent task spans to `path` (util/state.py)."""
    from .util.state import timeline as _timeline

    return _timeline(path, address, cluster_key)

__all__ = [
    "ActorClass", "ActorHandle", "RemoteFunction", "ObjectRef",
    "init", "shutdown", "is_initialized", "session_dir", "remote", "method", "get", "put", "wait",
    "cancel", "kill", "get_actor", "get_runtime_context",
    "EngineError", "TaskError", "WorkerCrashedError", "GetTimeoutError", "TaskCancelledError",
    "ActorDiedError", "ObjectStoreFullError", "ObjectLostError", "OwnerDiedError", "ObjectFreedError",
    "RuntimeNotInitializedError", "SerializationError", "NodeUnreachableError", "ObjectReconstructionFailedError",
    "cluster", "nodes", "timeline",
    "kv",
]
