"""ownrun's engine: a distributed-futures runtime built on ownership.

    from ownrun import engine

    engine.init()

    @engine.remote
    def square(x):
        return x * x

    print(engine.get([square.remote(i) for i in range(4)]))

The API keeps Ray Core's names and semantics (DESIGN.md §8).
"""

from . import actor, cluster, kv, util  # noqa: E402 - Ray's ray.actor / ray.util (they import the API)
from .api import (
    ActorClass,
    ActorHandle,
    RemoteFunction,
    available_resources,
    cancel,
    cluster_resources,
    exit_actor,
    get,
    get_actor,
    get_gpu_ids,
    get_node_ip_address,
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
    TaskUnschedulableError,
    WorkerCrashedError,
)
from .generator import DynamicObjectRefGenerator, ObjectRefGenerator
from .object_ref import ObjectRef

ObjectID = ObjectRef  # Ray's older name
nodes = cluster.nodes


def timeline(path: str | None = None, address: str | None = None, cluster_key: str | None = None) -> dict:
    """Writes a Chrome trace of the cluster's recent task spans to `path` (util/state.py)."""
    from .util.state import timeline as _timeline

    return _timeline(path, address, cluster_key)

__all__ = [
    "ActorClass", "ActorHandle", "RemoteFunction", "ObjectRef", "ObjectID", "ObjectRefGenerator", "DynamicObjectRefGenerator",
    "available_resources", "cluster_resources", "get_gpu_ids", "get_node_ip_address", "exit_actor",
    "actor", "util",
    "init", "shutdown", "is_initialized", "session_dir", "remote", "method", "get", "put", "wait",
    "cancel", "kill", "get_actor", "get_runtime_context",
    "EngineError", "TaskError", "WorkerCrashedError", "GetTimeoutError", "TaskCancelledError",
    "ActorDiedError", "TaskUnschedulableError", "ObjectStoreFullError", "ObjectLostError", "OwnerDiedError", "ObjectFreedError",
    "RuntimeNotInitializedError", "SerializationError", "NodeUnreachableError", "ObjectReconstructionFailedError",
    "cluster", "nodes", "timeline",
    "kv",
]
