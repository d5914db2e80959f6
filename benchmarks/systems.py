"""One small interface over each system `compare` measures: ownrun, Ray and Dask.

Owns: starting and stopping a system on this machine with a given number of CPUs, and the
handful of operations the benchmark bodies use (`task`, `actor`, `call`, `put`, `get`,
`kill`), each mapped to the system's public API. ownrun and Ray share Ray Core's API, so one
class serves both; Dask's distributed Client is mapped onto it (`put` is `scatter`, an actor is
`submit(cls, actor=True)`), and `supports()` says which rows apply to it.
Does not: install anything. `availability(name)` imports the system and says why it cannot
be used when it cannot (not installed, import error).
Not thread-safe: one system per process (`compare` runs each in its own child process).
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

NAMES = ("ownrun", "ray", "dask")
MODULES = {"ownrun": "ownrun.engine", "ray": "ray", "dask": "distributed"}
INSTALL_HINT = ("python3 -m venv /tmp/venv-ray && /tmp/venv-ray/bin/pip install ray "
                "'dask[distributed]' numpy opencv-python-headless && /tmp/venv-ray/bin/pip "
                "install -e . && /tmp/venv-ray/bin/python benchmarks/compare.py --with ray,dask")


def availability(name: str) -> tuple[str | None, str | None]:
    """(version, None) if `name` can be imported in this Python, else (None, why not)."""
    try:
        module = importlib.import_module(MODULES[name])
    except Exception as exc:  # ImportError, or a broken install raising anything else
        return None, f"{name} is not importable in this Python ({type(exc).__name__}: {exc})"
    if name == "ownrun":
        from ownrun.benchmarks import meta

        return meta.versions()["ownrun"], None
    return getattr(module, "__version__", "unknown"), None


class RayCoreAPI:
    """ownrun or Ray, through Ray Core's API (`init`, `remote`, `put`, `get`, `kill`)."""

    ordered_actor_calls = True  # calls from one caller run in submission order
    def __init__(self, name: str) -> None:
        self.name = name
        self.api: Any = None

    def start(self, cpus: int) -> None:
        if self.name == "ray":
            import ray

            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR")
            self.api = ray
        else:
            from ownrun import engine

            engine.init(num_cpus=cpus)
            self.api = engine

    def stop(self) -> None:
        self.api.shutdown()

    def supports(self, row: str) -> bool:
        return True

    def task(self, fn: Callable, **options: Any) -> Callable[..., Any]:
        return (self.api.remote(**options)(fn) if options else self.api.remote(fn)).remote

    def actor(self, cls: type) -> Any:
        return self.api.remote(num_cpus=0)(cls).remote()

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        return getattr(handle, method).remote(*args)

    def put(self, value: Any) -> Any:
        return self.api.put(value)

    def get(self, refs: Any, timeout: float) -> Any:
        return self.api.get(refs, timeout=timeout)

    def kill(self, handle: Any) -> None:
        self.api.kill(handle)


class DaskDistributed:
    """Dask's distributed scheduler on a LocalCluster of one single-threaded worker process
    per CPU. Futures stand in for refs; Dask resolves futures passed as arguments."""

    name = "dask"
    ordered_actor_calls = False  # a Dask actor runs calls on a thread pool, in any order
    UNSUPPORTED = {key: "no shared-memory store: gather copies over TCP"
                   for key in ("get_1mib", "get_100mib", "get_1mib_again", "get_100mib_again")}

    def __init__(self) -> None:
        self.client: Any = None
        self.cluster: Any = None

    def start(self, cpus: int) -> None:
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=cpus, threads_per_worker=1, processes=True,
                                    dashboard_address=None)
        self.client = Client(self.cluster)

    def stop(self) -> None:
        self.client.close()
        self.cluster.close()

    def supports(self, row: str) -> bool:
        return row not in self.UNSUPPORTED

    def task(self, fn: Callable, **options: Any) -> Callable[..., Any]:
        submit = self.client.submit
        return lambda *args: submit(fn, *args, pure=False)

    def actor(self, cls: type) -> Any:
        return self.client.submit(cls, actor=True).result()

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        return getattr(handle, method)(*args)

    def put(self, value: Any) -> Any:
        return self.client.scatter(value)

    def get(self, refs: Any, timeout: float) -> Any:
        if isinstance(refs, list):
            if refs and not hasattr(refs[0], "key"):  # actor futures
                return [r.result(timeout) for r in refs]
            return self.client.gather(refs)
        return refs.result(timeout)

    def kill(self, handle: Any) -> None:
        pass  # the actor goes with its last reference


def create(name: str) -> RayCoreAPI | DaskDistributed:
    if name not in NAMES:
        raise ValueError(f"unknown system {name!r}; expected one of {', '.join(NAMES)}")
    return DaskDistributed() if name == "dask" else RayCoreAPI(name)
