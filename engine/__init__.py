"""ownrun's engine: a distributed-futures runtime built on ownership.

    from ownrun import engine

    engine.init()

    @engine.remote
    def square(x):
        return x * x

    print(engine.get([square.remote(i) for i in range(4)]))

The API keeps Ray Core's names and semantics (DESIGN.md §8).
"""

import importlib

# The public names and where they live. Imported on first use (PEP 562), so a process that
# imports only a part of the engine (a node daemon, the head, a zygote importing
# `ownrun.engine.node.daemon`) does not pay for the API, the cluster package and the clients.
_API = ("ActorClass", "ActorHandle", "RemoteFunction", "available_resources", "cancel", "cluster_resources",
        "exit_actor", "get", "get_actor", "get_gpu_ids", "get_node_ip_address", "get_runtime_context", "init",
        "is_initialized", "kill", "method", "put", "remote", "session_dir", "shutdown", "wait")
_ERRORS = ("ActorDiedError", "EngineError", "GetTimeoutError", "NodeUnreachableError", "ObjectFreedError",
           "ObjectLostError", "ObjectReconstructionFailedError", "ObjectStoreFullError", "OwnerDiedError",
           "RuntimeNotInitializedError", "SerializationError", "TaskCancelledError", "TaskError",
           "TaskPlacementGroupRemoved", "TaskUnschedulableError", "WorkerCrashedError")
_WHERE = {**{name: (".api", name) for name in _API}, **{name: (".errors", name) for name in _ERRORS},
          "DynamicObjectRefGenerator": (".generator", "DynamicObjectRefGenerator"),
          "ObjectRefGenerator": (".generator", "ObjectRefGenerator"),
          "ObjectRef": (".object_ref", "ObjectRef"),
          "ObjectID": (".object_ref", "ObjectRef"),  # Ray's older name
          "nodes": (".cluster", "nodes"),
          **{module: ("." + module, None) for module in ("actor", "cluster", "kv", "util")}}


def __getattr__(name: str):
    where = _WHERE.get(name)
    if where is None:
        if name.startswith("__"):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        try:  # a submodule not imported yet (engine.errors, engine.debug, ...)
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(where[0], __name__)
    value = module if where[1] is None else getattr(module, where[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
    "ActorDiedError", "TaskUnschedulableError", "TaskPlacementGroupRemoved", "ObjectStoreFullError", "ObjectLostError", "OwnerDiedError", "ObjectFreedError",
    "RuntimeNotInitializedError", "SerializationError", "NodeUnreachableError", "ObjectReconstructionFailedError",
    "cluster", "nodes", "timeline",
    "kv",
]
