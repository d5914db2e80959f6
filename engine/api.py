"""The public API, with Ray Core's names and semantics (DESIGN.md §8).

Owns `init`/`shutdown`, `@remote` for functions and classes, `.options()`, actor handles,
`get`/`put`/`wait`/`cancel`/`kill`/`get_actor`/`get_runtime_context`. Turns user calls
into `TaskEntry` records for the core worker; validates options and arguments up front so
bad input fails at `.remote()` with a message naming the problem.

Thread-safe: any thread of the driver or of a task may call these functions.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import sys
import threading

from . import errors, ids, object_ref
from .cluster import embedded, processes
from .generator import ObjectRefGenerator
from .object_ref import ObjectRef
from .ownership.task_manager import ACTOR_CREATION, ACTOR_METHOD, NORMAL, TaskEntry
from .rpc import notices
from .rpc import protocol as P
from .util import gc_tuning, labels, malloc_tuning, process_tools, scheduling_strategies, signature
from .util.cpus import usable_cpus
from .util.placement_group import PlacementGroupSchedulingStrategy
from .util.placement_group import of_options as placement_of
from .util.placement_group import resources_in as resources_in_group
from .util.placement_group import task_extra as placement_extra
from .worker import serialization
from .worker.actor_state import ActorState
from .worker.context import RuntimeContext, task_context

log = logging.getLogger("ownrun.engine")
_init_lock = threading.Lock()
_init_info: dict | None = None  # what the current init() returned

PLACEMENT_OPTIONS = {"placement_group", "placement_group_bundle_index", "placement_group_capture_child_tasks"}
TASK_OPTIONS = {"num_returns", "num_cpus", "resources", "max_retries", "retry_exceptions", "name",
                "memory", "num_gpus", "scheduling_strategy", "max_calls", *PLACEMENT_OPTIONS, *labels.OPTIONS}
ACTOR_OPTIONS = {"num_cpus", "resources", "name", "max_restarts", "max_task_retries",
                 "max_concurrency", "lifetime", "namespace", "get_if_exists", "memory", "num_gpus",
                 "scheduling_strategy", "concurrency_groups", *PLACEMENT_OPTIONS, *labels.OPTIONS}
# name: the call's task name (state API, timeline, logs); concurrency_group: which of the
# actor's concurrency groups runs it (the default group if none)
METHOD_OPTIONS = {"num_returns", "name", "concurrency_group"}
# Ray options ownrun does not implement, each with the values that mean "off" in Ray (accepted
# and ignored, so `ray.init(include_dashboard=False)` runs); any other value is rejected.
UNSUPPORTED_OPTIONS = {
    "runtime_env": (None, {}), "accelerator_type": (None,), "max_pending_calls": (None, -1), "_metadata": (None,),
    "enable_task_events": (None, True), "memory": (None, 0),
    "_generator_backpressure_num_objects": (None,), "retry_exceptions_allowlist": (None,),
}
UNSUPPORTED_INIT = {
    "local_mode": (False,), "runtime_env": (None, {}), "_system_config": (None, {}),
    "job_config": (None,), "include_dashboard": (None, False),
    "dashboard_host": (None,), "dashboard_port": (None,), "storage": (None,), "_temp_dir": (None,),
    "labels": (None, {}), "log_to_driver": (True,), "configure_logging": (True, False),
    "logging_level": (None,), "logging_format": (None,), "logging_config": (None,),
    "_node_ip_address": (None,), "_redis_password": (None,), "_plasma_directory": (None,),
    "_enable_object_reconstruction": (None, True), "_metrics_export_port": (None,),
    "_tracing_startup_hook": (None,), "_node_name": (None,),
}
# Engine settings init() passes on to the processes it starts (DEFAULT_CONFIG of the core
# worker, the node daemon's and the head's settings).
ENGINE_CONFIG = {"metadata", "node_death_timeout", "node_suspect_timeout", "cluster_key", "lease_idle_timeout",
                 "heartbeat_period", "infeasible_timeout", "max_idle_workers", "reap_recheck_period", "idle_worker_grace",
                 "max_in_flight_per_worker", "rpc_timeout", "put_ahead_max_bytes", "get_spin_us"}


def _reject_unsupported(options: dict, unsupported: dict, what: str) -> None:
    """Raises for a Ray option ownrun does not implement, unless it has its "off" value."""
    for key, value in options.items():
        noop = unsupported.get(key)
        if noop is not None and not any(value is v or (type(value) is type(v) and value == v)
                                        for v in noop):
            raise ValueError(f"{what}: option {key}={value!r} is not supported by ownrun")


def _check_namespace(namespace) -> None:
    if namespace is None:
        return
    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be a string, got {type(namespace).__name__}")
    if not namespace:
        raise ValueError("namespace cannot be an empty string")


def _namespace(core) -> str | None:
    """The namespace of the job this code runs for (None: the default one)."""
    return getattr(core, "namespace", None) if core.mode == "driver" else task_context.namespace


def _core():
    core = object_ref.current_worker()
    if core is None:
        raise errors.RuntimeNotInitializedError("ownrun is not initialized: call engine.init() first")
    return core


def _core_or_init():
    """The core worker; on first use without `init()` in a driver, starts a local cluster as
    Ray does (`.remote()`, `put`, `get`, `wait`)."""
    core = object_ref.current_worker()
    if core is None:
        log.warning("engine.init() was not called: starting a local cluster with default settings "
                    "(call engine.init() first to choose them)")
        init(ignore_reinit_error=True)
        core = _core()
    return core


# ---- init / shutdown ------------------------------------------------------------------------
def is_initialized() -> bool:
    return object_ref.current_worker() is not None


def init(address: str | None = None, num_cpus: float | None = None, resources: dict | None = None,
         object_store_memory: int | None = None, num_nodes: int = 1, inline_threshold: int | None = None,
         prestart_workers: bool = True, num_gpus: float | None = None, ignore_reinit_error: bool = False,
         namespace: str | None = None, **config):
    """Starts an embedded cluster (or joins one at `address`) and makes this process its driver.

    `num_nodes` nodes on this machine, each with `num_cpus` CPUs and a store of
    `object_store_memory` bytes (default: 30% of RAM split among the nodes, so the stores
    add up to what the machine can hold; nodes added later get the same size).

    Unknown keyword arguments raise TypeError; Ray's options ownrun does not implement raise
    ValueError naming the option (unless given the value that means "off"). A second call
    raises RuntimeError, or returns the first call's answer with `ignore_reinit_error=True`.

    `get_spin_us` (default 200, 0: off) is how long this driver's `get` polls for a reply
    before it sleeps, while the machine has a CPU to spare (worker/spin_window.py).

    `namespace` is where this job's named actors are created and looked up (its tasks and
    actors inherit it). Without one, ownrun uses one shared default namespace (Ray gives each
    job an anonymous one)."""
    _check_namespace(namespace)
    unknown = sorted(set(config) - ENGINE_CONFIG - set(UNSUPPORTED_INIT))
    if unknown:
        raise TypeError(f"init() got an unexpected keyword argument {unknown[0]!r}")
    _reject_unsupported(config, UNSUPPORTED_INIT, "init()")
    config = {k: v for k, v in config.items() if k in ENGINE_CONFIG}
    ahead = config.get("put_ahead_max_bytes", 0)
    if type(ahead) is not int or ahead < 0:
        raise ValueError(f"put_ahead_max_bytes must be an int >= 0 (0: off), got {ahead!r}")
    spin = config.get("get_spin_us", 0)
    if type(spin) not in (int, float) or not 0 <= spin <= 10**6:
        raise ValueError(f"get_spin_us must be a number of microseconds from 0 (off) to 1e6, got {spin!r}")
    if num_gpus:
        if num_gpus < 0:
            raise ValueError(f"num_gpus must be >= 0, got {num_gpus}")
        resources = {**(resources or {}), "GPU": float(num_gpus)}
    with _init_lock:
        global _init_info
        if is_initialized():
            if ignore_reinit_error:
                log.info("engine.init() was already called: ignoring this call (ignore_reinit_error=True)")
                return _init_info
            raise errors.AlreadyInitializedError("engine.init() was already called in this process (call engine.shutdown() "
                               "first, or pass ignore_reinit_error=True)")
        _init_info = _init(address, num_cpus, resources, object_store_memory, num_nodes, inline_threshold,
                           prestart_workers, config)
        object_ref.current_worker().namespace = namespace
        return _init_info


def _init(address, num_cpus, resources, object_store_memory, num_nodes, inline_threshold, prestart_workers,
          config) -> dict:
    if address == "local":  # Ray's name for "start a new cluster"
        address = None
    malloc_tuning.apply()  # the driver's allocator as its cluster's processes have it
    gc_tuning.apply()  # its collector's threshold too (unless the program set its own)
    process_tools.raise_open_file_limit()  # before it starts the cluster's processes: they inherit it
    if address is not None:  # join a cluster started by `ownrun start`; shutdown() leaves it running
        from .cluster.join import connect_driver

        if num_cpus is not None or resources or object_store_memory is not None or num_nodes != 1:
            raise ValueError("num_cpus, resources, object_store_memory and num_nodes describe a new "
                             "cluster: they cannot be given with address=")
        if inline_threshold is not None:
            config["inline_threshold"] = int(min(inline_threshold, 2**62))
        core = connect_driver(address, config.pop("cluster_key", None), config)
        object_ref.set_worker(core)
        return {"session_dir": core.node_info.get("session_dir"), "node_id": core.node_id,
                "address": core.head_address}
    metadata = config.get("metadata", "ownership")
    if metadata not in ("ownership", "centralized"):
        raise ValueError(f"metadata must be 'ownership' or 'centralized', got {metadata!r}")
    cpus = float(num_cpus if num_cpus is not None else usable_cpus())
    if cpus < 0:
        raise ValueError(f"num_cpus must be >= 0, got {num_cpus}")
    # Each node's store: as given, or the machine's default split among the nodes.
    store = int(object_store_memory or processes.default_object_store_memory(num_nodes))
    if inline_threshold is not None:
        config["inline_threshold"] = int(min(inline_threshold, 2**62))
    config.setdefault("prestart_workers", int(cpus) if prestart_workers else 0)
    config["driver_sys_path"] = _driver_sys_path()
    cluster = embedded.LocalCluster(cpus, dict(resources or {}), store, config, num_nodes=num_nodes)
    cluster.start()
    try:
        core = cluster.connect_driver(config)
    except BaseException:
        cluster.stop(None)
        raise
    embedded.set_current(cluster)
    object_ref.set_worker(core)
    return {"session_dir": cluster.session_dir, "node_id": core.node_id, "address": cluster.head_address}


def _driver_sys_path() -> list[str]:
    """What workers put on their sys.path for this driver, as Ray does: the directory of the
    driver's script and the current directory, when the script's directory is on the driver's
    sys.path (not for `python -m pkg.mod`, nor with `python -P`), so the script's sibling
    modules import in tasks."""
    script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else None
    if script is None:
        return []
    directory = os.path.dirname(os.path.realpath(script))
    if directory not in sys.path:
        return []
    return [directory, os.path.abspath(os.curdir)]


def shutdown() -> None:
    """Stops the embedded cluster: no process and no /dev/shm file is left behind."""
    with _init_lock:
        core = object_ref.current_worker()
        if core is None:
            return
        object_ref.set_worker(None)
        cluster = embedded.set_current(None)
        core.fail_waiters(errors.RuntimeNotInitializedError(
            "ownrun was shut down (engine.shutdown()) while this call waited"))
        try:
            if cluster is not None:
                cluster.stop(core.transport)
        finally:
            core.stop(unregister=cluster is None)


def session_dir() -> str | None:
    cluster = embedded.current()
    return cluster.session_dir if cluster is not None else None


# ---- functions ------------------------------------------------------------------------------------
def _resources(options: dict, default_cpus: float) -> tuple[tuple, dict]:
    resources = dict(options.get("resources") or {})
    for key, value in resources.items():
        if not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"resource {key!r} must be a non-negative number, got {value!r}")
    cpus = options.get("num_cpus")
    resources["CPU"] = float(default_cpus if cpus is None else cpus)
    if resources["CPU"] < 0:
        raise ValueError(f"num_cpus must be >= 0, got {cpus}")
    gpus = options.get("num_gpus")
    if gpus:  # a resource like any other: init(num_gpus=) gives the node some
        if not isinstance(gpus, (int, float)) or gpus < 0:
            raise ValueError(f"num_gpus must be a non-negative number, got {gpus!r}")
        resources["GPU"] = float(gpus)
    resources = {k: float(v) for k, v in resources.items() if v}
    return tuple(sorted(resources.items())), resources


def _check_options(options: dict, allowed: set, what: str) -> None:
    unknown = set(options) - allowed - set(UNSUPPORTED_OPTIONS)
    if unknown:
        raise ValueError(f"unknown option(s) for {what}: {', '.join(sorted(unknown))}; "
                         f"allowed: {', '.join(sorted(allowed))}")
    _reject_unsupported(options, UNSUPPORTED_OPTIONS, what)
    if options.get("scheduling_strategy") is not None:
        scheduling_strategies.check(options["scheduling_strategy"], what)
    if "label_selector" in options or "fallback_strategy" in options:
        labels.check(options)  # as Ray checks them; submitting with them is refused (labels.refusal)
    for key in set(options) - allowed:  # a Ray option this kind of call does not take
        if options[key] is not None:
            raise ValueError(f"{what}: option {key}={options[key]!r} is not supported by ownrun")
    num_returns = options.get("num_returns", 1)
    if num_returns in ("streaming", "dynamic") and allowed is TASK_OPTIONS:
        if options.get("max_retries"):
            raise ValueError(f"{what}: num_returns={num_returns!r} tasks are not retried by ownrun "
                             f"(max_retries={options['max_retries']!r} given; use 0)")
    elif not isinstance(num_returns, int) or isinstance(num_returns, bool) or num_returns < 0:
        raise ValueError(f"{what}: option num_returns={num_returns!r} is not supported by ownrun "
                         "(a non-negative int is, or 'streaming' or 'dynamic' for a remote function)")
    max_calls = options.get("max_calls")
    if max_calls is not None and (not isinstance(max_calls, int) or isinstance(max_calls, bool) or max_calls < 0):
        raise ValueError(f"{what}: option max_calls={max_calls!r} is not supported (a non-negative int is; "
                         "0: no limit)")
    if "retry_exceptions" in options and not isinstance(options["retry_exceptions"], bool):
        raise ValueError(f"{what}: option retry_exceptions={options['retry_exceptions']!r} is not "
                         "supported by ownrun (True or False is)")


_JUST_REFS = {ObjectRef}


def _prepare_args(args: tuple, kwargs: dict, fn_name: str):
    """Splits top-level refs (resolved before the task runs) from the pickled rest."""
    if not args and not kwargs:
        return [], [], [], []
    if not kwargs and set(map(type, args)) == _JUST_REFS:  # (a smoothing window: nothing to pickle)
        return [], list(range(len(args))), [[ref.id, ref.owner] for ref in args], None
    arg_list = list(args)
    positions = [i for i, value in enumerate(arg_list) if type(value) is ObjectRef]
    if positions:
        deps = [[arg_list[i].id, arg_list[i].owner] for i in positions]
        for i in positions:
            arg_list[i] = None
    else:
        deps = []
    kw = dict(kwargs)
    for key, value in kw.items():
        if type(value) is ObjectRef:
            deps.append([value.id, value.owner])
            positions.append(key)
            kw[key] = None
    try:
        frames, nested = serialization.serialize_arguments(arg_list, kw)
    except errors.SerializationError:
        _name_unpicklable(arg_list, kw, fn_name)
        raise
    if len(frames) > 1:  # out-of-band buffers (numpy arrays): bytes of their own, kept by the task
        frames = [f if isinstance(f, bytes) else bytes(f) for f in frames]
    return frames, positions, deps, nested


def _name_unpicklable(args: list, kwargs: dict, fn_name: str) -> None:
    for where, value in [*enumerate(args), *kwargs.items()]:
        try:
            serialization.serialize(value)
        except errors.SerializationError as exc:
            label = f"argument {where}" if isinstance(where, int) else f"keyword argument {where!r}"
            raise errors.SerializationError(f"{label} of {fn_name}() cannot be serialized: "
                                            f"{exc.__cause__ or exc}") from None


class _Exported:
    """A function or class pickled once, identified by a hash of its bytes."""

    def __init__(self, obj):
        self.obj = obj
        self._blob = None
        self._id = None
        self.signature = signature.from_spec(signature.spec(obj))  # of a class: its constructor's

    def get(self) -> tuple[str, bytes]:
        if self._blob is None:
            blob = serialization.dumps_function(self.obj)
            _check_function_size(self.obj, len(blob))
            self._blob = blob
            self._id = hashlib.blake2b(blob, digest_size=12).hexdigest()
        return self._id, self._blob


FUNCTION_SIZE_WARN = 10**7  # pickled function or class sizes, as Ray's thresholds
FUNCTION_SIZE_ERROR = 10**8


def _check_function_size(obj, size: int) -> None:
    """A function or class is sent to every worker that runs it: one that captured a large
    object is refused over 100 MB and warned about over 10 MB, with Ray's messages."""
    if size <= FUNCTION_SIZE_WARN:
        return
    what = "actor" if inspect.isclass(obj) else "remote function"
    name = obj.__name__ if inspect.isclass(obj) else getattr(obj, "__qualname__", obj.__name__)
    mib = size / 2**20
    advice = ("Check that its definition is not implicitly capturing a large array or other object in "
              "scope. Tip: use engine.put() to put large objects in the object store.")
    if size > FUNCTION_SIZE_ERROR:
        raise ValueError(f"The {what} {name} is too large ({mib:.0f} MiB > the limit of "
                         f"{FUNCTION_SIZE_ERROR / 2**20:.0f} MiB). {advice}")
    log.warning("The %s %s is very large (%.0f MiB). %s", what, name, mib, advice)


def _refuse(message: str):
    raise ValueError(message)


def _no_dags(what: str):
    raise NotImplementedError(f"{what}.bind(): Ray DAGs (bind) are not supported by ownrun; use .remote()")


class RemoteFunction:
    def __init__(self, fn, options: dict, exported: _Exported | None = None):
        if inspect.iscoroutinefunction(fn):  # as Ray: a task runs no event loop
            raise ValueError(f"'async def' should not be used for remote tasks ({fn.__qualname__}): "
                             "wrap the async function with `asyncio.run(f())`")
        _check_options(options, TASK_OPTIONS, f"task {fn.__name__}")
        self._fn = fn
        self._options = options
        self._exported = exported or _Exported(fn)
        self._name = getattr(fn, "__qualname__", fn.__name__)
        self._dynamic = options.get("num_returns") == "dynamic"  # streamed; one ref lists the items
        self._streaming = self._dynamic or options.get("num_returns") == "streaming"
        self._num_returns = 0 if self._streaming else int(options.get("num_returns", 1))
        self._shape, self._resources = _resources(options, 1)
        self._max_retries = int(options.get("max_retries", 3))
        self._retry_exceptions = bool(options.get("retry_exceptions", False))
        # what the worker and the submitter need beyond the spec: streaming, max_calls
        self._extra = {k: v for k, v in (("streaming", self._streaming), ("dynamic", self._dynamic),
                                         ("max_calls", options.get("max_calls"))) if v} or None
        if options.get("name"):
            self._name = options["name"]
        self._placement = placement_of(options)  # a group, "capture" or None
        if self._placement not in (None, "capture"):
            self._in_group(self._placement)
        strategy = options.get("scheduling_strategy")
        self._strategy = None if strategy in (None, "DEFAULT") or self._placement not in (None, "capture") \
            else strategy  # SPREAD, node affinity
        refusal = labels.refusal(options, f"task {self._name}")
        if refusal:  # no cost per call for the others: this instance's remote() only refuses
            self.remote = lambda *args, **kwargs: _refuse(refusal)

    def __call__(self, *args, **kwargs):
        raise TypeError(f"remote function {self._name} cannot be called directly; use {self._name}.remote()")

    def _in_group(self, placement: tuple) -> None:
        """Asks for this function's resources out of a placement group's bundle."""
        self._resources = resources_in_group(placement, self._resources, f"task {self._name}")
        self._shape = tuple(sorted(self._resources.items()))
        self._extra = {**(self._extra or {}), "placement_group": placement_extra(placement)}

    def options(self, **options) -> RemoteFunction:
        return RemoteFunction(self._fn, {**self._options, **options}, self._exported)

    def bind(self, *args, **kwargs):
        _no_dags(self._name)

    def remote(self, *args, **kwargs):
        signature.check(self._exported.signature, args, kwargs, self._name)
        if self._placement == "capture" and task_context.placement_group is not None:
            captured = task_context.placement_group  # (group, capture): the caller's group
            if captured[1]:
                return self.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
                    captured[0], -1, True)).remote(*args, **kwargs)
        core = _core_or_init()
        fn_id, blob = self._exported.get()
        arg_frames, positions, deps, nested = _prepare_args(args, kwargs, self._name)
        task_id = core.next_id()
        n = self._num_returns
        namespace = _namespace(core)
        entry = TaskEntry(task_id=task_id, name=self._name, kind=NORMAL, fn_id=fn_id, fn_blob=blob,
                          arg_frames=arg_frames, positions=positions, deps=deps, nested=nested,
                          return_ids=ids.return_ids(task_id, n), retries_left=self._max_retries,
                          retry_exceptions=self._retry_exceptions, shape=self._shape,
                          resources=self._resources,
                          extra={**(self._extra or {}), "namespace": namespace} if namespace else self._extra)
        if self._strategy is not None:
            entry.extra = {**(entry.extra or {}), "place_on": scheduling_strategies.place_on(core, self._strategy, self._name)}
        if self._streaming:
            entry.retries_left = 0
            if self._dynamic:
                entry.return_ids = [ids.dynamic_id(task_id)]
                return core.submit_task(entry)[0]
            core.submit_task(entry)
            return ObjectRefGenerator(core, task_id)
        refs = core.submit_task(entry)
        if n == 1:
            return refs[0]
        return refs


# ---- actors ------------------------------------------------------------------------------------------
class ActorClass:
    def __init__(self, cls, options: dict, exported: _Exported | None = None):
        _check_options(options, ACTOR_OPTIONS, f"actor {cls.__name__}")
        _check_namespace(options.get("namespace"))
        if options.get("lifetime") not in (None, "non_detached", "detached"):
            raise ValueError(f"actor {cls.__name__}: lifetime must be 'detached' or 'non_detached' "
                             f"(or None), got {options['lifetime']!r}")
        placement_of(options)  # a bad placement group option fails here, as a task's does
        self._cls = cls
        self._options = options
        self._exported = exported or _Exported(cls)
        self._methods, self._specs = _actor_methods(cls)
        _check_concurrency_groups(cls.__name__, options.get("concurrency_groups"), self._methods)

    def __call__(self, *args, **kwargs):
        raise TypeError(f"actor class {self._cls.__name__} cannot be instantiated directly; "
                        f"use {self._cls.__name__}.remote()")

    def __getattr__(self, item: str):
        """Class attributes, static and class methods of the user's class, as in Ray (`Foo.X`,
        `Foo.factory(1)` runs locally)."""
        cls = self.__dict__.get("_cls")
        if cls is None or item.startswith("__"):
            raise AttributeError(item)
        return getattr(cls, item)

    def __dir__(self) -> list:
        return sorted({*super().__dir__(), *dir(self._cls)})

    def __mro_entries__(self, bases):  # `class B(SomeActorClass)`: Ray refuses it too
        raise errors.ActorClassInheritanceException(
            f"class inheriting from actor class {self._cls.__name__}: Inheriting from actor classes is "
            "not currently supported. You can instead inherit from a non-actor base class and make "
            "the derived class an actor class (with @remote).")

    def options(self, **options) -> ActorClass:
        return ActorClass(self._cls, {**self._options, **options}, self._exported)

    def bind(self, *args, **kwargs):
        _no_dags(self._cls.__name__)

    def remote(self, *args, **kwargs) -> ActorHandle:
        cls_name = self._cls.__name__
        refusal = labels.refusal(self._options, f"actor {cls_name}")
        if refusal:
            raise ValueError(refusal)
        signature.check(self._exported.signature, args, kwargs, cls_name)
        core = _core_or_init()
        options = self._options
        name = options.get("name")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"actor name must be a string, got {type(name).__name__}")
        if name == "":
            raise ValueError("actor name cannot be an empty string")
        detached = options.get("lifetime") == "detached"
        strategy = options.get("scheduling_strategy")
        group = placement_of(options)
        if group == "capture":
            captured = task_context.placement_group
            group = (captured[0], -1, True) if captured is not None and captured[1] else None
        target = None if strategy in (None, "DEFAULT") or group is not None \
            else scheduling_strategies.place_on(core, strategy, f"actor {cls_name}")
        namespace = options.get("namespace") or _namespace(core)
        fn_id, blob = self._exported.get()
        shape, resources = _resources(options, 0)
        default = all(options.get(k) in (None, {}) for k in ("num_cpus", "num_gpus", "resources"))
        placement = {"CPU": 1.0} if default else None  # 1 CPU to place, 0 to run (Ray)
        if group is not None:  # its resources (and placement) out of a bundle of the group
            what = f"actor {cls_name}"
            placement = resources_in_group(group, placement, what) if placement else None
            resources = resources_in_group(group, resources, what)
            shape = tuple(sorted(resources.items()))
        arg_frames, positions, deps, nested = _prepare_args(args, kwargs, f"{cls_name}.__init__")
        actor_id = ids.new_actor_id()
        key = notices.new_token()  # our reports of it (and its worker's) prove themselves with it
        restarts = (int(options.get("max_restarts", 0)), int(options.get("max_task_retries", 0)))
        info = {"class_name": cls_name, "methods": self._methods, "owner": core.address,
                "signatures": self._specs, "max_restarts": restarts[0], "max_task_retries": restarts[1],
                "detached": detached or None, "get_if_exists": bool(options.get("get_if_exists") and name),
                "namespace": namespace, "actor_key": key, "notice_token": core.notice_token}
        try:  # the head decides, also between concurrent creators of one name (get_if_exists)
            existing = core.call(core.head_address, P.ACTOR_REGISTER, actor_id, name, info)
        except errors.EngineError as exc:
            raise ValueError(f"{exc}. Please use a different name, or get_if_exists=True") from None
        if existing is not None:
            return _handle_from_view(core, name, existing)
        state = ActorState(actor_id, name, cls_name, owned=True, max_restarts=restarts[0],
                           max_task_retries=restarts[1], detached=detached, placement=placement, key=key)
        state.target = target  # [daemon, pinned, soft]: where its lease is asked for (scheduling_strategy)
        task_id = core.next_id()
        entry = TaskEntry(task_id=task_id, name=f"{cls_name}.__init__", kind=ACTOR_CREATION, fn_id=fn_id,
                          fn_blob=blob, arg_frames=arg_frames, positions=positions, deps=deps, nested=nested,
                          return_ids=ids.return_ids(task_id, 1), retries_left=0, retry_exceptions=False,
                          shape=shape, resources=resources, actor=state,
                          extra={"actor_id": actor_id, "name": name or cls_name,
                                 "max_concurrency": options.get("max_concurrency"), "namespace": namespace,
                                 "actor_key": key, "concurrency_groups": options.get("concurrency_groups")})
        if group is not None:
            entry.extra["placement_group"] = placement_extra(group)
        with core.lock:
            core.actors[actor_id] = state
            if not detached:  # killed once every handle is gone, named or not (as in Ray)
                core.actor_by_creation[entry.return_ids[0]] = state
        creation_ref = core.submit_task(entry)[0]
        if detached:  # no handle keeps it alive: it lives until engine.kill() or the cluster stops
            creation_ref = None
        return ActorHandle(actor_id, cls_name, self._methods, creation_ref, name, restarts, self._specs)


def _check_concurrency_groups(cls_name: str, groups, methods: dict) -> None:
    """ValueError unless `groups` is {name: threads or coroutines > 0} and every method's
    `@method(concurrency_group=)` names one of them (Ray checks both at definition)."""
    if groups is None:
        groups = {}
    if not isinstance(groups, dict) or not all(
            isinstance(k, str) and k and isinstance(v, int) and not isinstance(v, bool) and v > 0
            for k, v in groups.items()):
        raise ValueError(f"actor {cls_name}: concurrency_groups must map group names to a positive "
                         f"int (its concurrency), got {groups!r}")
    for name, options in methods.items():
        group = options.get("concurrency_group")
        if group is not None and group not in groups:
            raise ValueError(f"actor {cls_name}: method {name} is in concurrency group {group!r}, "
                             f"which the actor does not define (it has: {sorted(groups) or 'none'})")


def _actor_methods(cls) -> tuple[dict, dict]:
    """({method name: its @method options}, {method name: its compact signature}) of a class."""
    methods = {name: _method_options(m) for name, m in inspect.getmembers(cls, callable)
               if not name.startswith("__") or name == "__call__"}
    return methods, {name: signature.method_spec(cls, name) for name in methods}


def _method_options(method) -> dict:
    return dict(getattr(method, "__ownrun_method_options__", {}))


def method(**options):
    """Decorator for actor methods: `@engine.method(num_returns=2)`."""
    _check_options(options, METHOD_OPTIONS, "@method")

    def wrap(fn):
        fn.__ownrun_method_options__ = options
        return fn
    return wrap


# Methods every actor has (Ray's names), run by the executor (`worker/executor.py`):
# `__ray_ready__()` -> True once the actor is created, `__ray_call__(fn, *args)` ->
# `fn(instance, *args)`, `__ray_terminate__()` ends the actor as `exit_actor()` does.
RAY_ACTOR_METHODS = ("__ray_ready__", "__ray_call__", "__ray_terminate__")


class ActorMethod:
    def __init__(self, handle: ActorHandle, name: str, options: dict):
        if options:  # the decorator's were checked when it ran; .options() brings new ones
            _check_options(options, METHOD_OPTIONS, f"actor method {handle._class_name}.{name}")
        self._handle = handle
        self._name = name
        self._options = options

    def options(self, **options) -> ActorMethod:
        return ActorMethod(self._handle, self._name, {**self._options, **options})

    def remote(self, *args, **kwargs):
        return self._handle._call(self._name, args, kwargs, self._options)

    def bind(self, *args, **kwargs):
        _no_dags(f"{self._handle._class_name}.{self._name}")

    def __call__(self, *args, **kwargs):
        raise TypeError(f"actor method {self._name} cannot be called directly; use .{self._name}.remote()")


class ActorHandle:
    def __init__(self, actor_id: bytes, class_name: str, methods: dict, creation_ref: ObjectRef | None,
                 name: str | None, restarts: tuple = (0, 0), specs: dict | None = None):
        self._restarts = tuple(restarts)  # (max_restarts, max_task_retries)
        self._specs = specs or {}  # method name -> compact signature (util.signature)
        self._signatures: dict = {}  # method name -> inspect.Signature, built on first call
        self._actor_id = actor_id
        self._class_name = class_name
        self._methods = methods
        self._creation_ref = creation_ref
        self._name = name

    def __getattr__(self, item: str) -> ActorMethod:
        methods = self.__dict__.get("_methods", {})
        if item in methods:
            return ActorMethod(self, item, methods[item])
        if item in RAY_ACTOR_METHODS:
            return ActorMethod(self, item, {})
        raise AttributeError(f"actor {self.__dict__.get('_class_name')} has no method {item!r}")

    def __repr__(self) -> str:
        return f"Actor({self._class_name}, {self._actor_id.hex()[:12]})"

    def __dir__(self) -> list:  # the actor's methods, as Ray lists them
        return sorted({"__init__", *self._methods, *RAY_ACTOR_METHODS})

    def __eq__(self, other) -> bool:  # handles to one actor are equal, as in Ray
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __reduce__(self):
        core = object_ref.current_worker()
        state = core.actors.get(self._actor_id) if core is not None else None
        address, worker_id = state.handle_address() if state is not None else (None, None)
        return (_rebuild_handle, (self._actor_id, self._class_name, self._methods, self._creation_ref,
                                  self._name, address, worker_id, self._restarts, self._specs))

    def _call(self, method_name: str, args: tuple, kwargs: dict, options: dict):
        core = _core()
        state = core.actors.get(self._actor_id)
        if state is None:
            state = core.actors.setdefault(self._actor_id, ActorState(
                self._actor_id, self._name, self._class_name, owned=False,
                max_restarts=self._restarts[0], max_task_retries=self._restarts[1]))
        qualname = f"{self._class_name}.{method_name}"
        sig = self._signatures.get(method_name, _UNSET)
        if sig is _UNSET:
            sig = self._signatures[method_name] = signature.from_spec(self._specs.get(method_name))
        signature.check(sig, args, kwargs, qualname)
        arg_frames, positions, deps, nested = _prepare_args(args, kwargs, qualname)
        creation = self._creation_ref
        if creation is not None and creation.owner != core.address:
            # A borrower's call holds the actor's handle until it finishes, so the creator
            # does not kill the actor under it (the creator's own calls it counts itself).
            nested = [*(nested or ()), [creation.id, creation.owner]]
        task_id = core.next_id()
        n = int(options.get("num_returns", 1))
        if options and options.get("name"):
            qualname = options["name"]
        entry = TaskEntry(task_id=task_id, name=qualname, kind=ACTOR_METHOD, fn_id=method_name, fn_blob=None,
                          arg_frames=arg_frames, positions=positions, deps=deps, nested=nested,
                          return_ids=ids.return_ids(task_id, n), retries_left=state.max_task_retries,
                          retry_exceptions=False, shape=(), resources={}, actor=state)
        if options and options.get("concurrency_group"):
            entry.extra = {"concurrency_group": options["concurrency_group"]}
        refs = core.submit_task(entry)
        return refs[0] if n == 1 else refs


_UNSET = object()


def _rebuild_handle(actor_id, class_name, methods, creation_ref, name, address, worker_id,
                    restarts=(0, 0), specs=None) -> ActorHandle:
    core = object_ref.current_worker()
    if core is not None and actor_id not in core.actors:
        state = ActorState(actor_id, name, class_name, owned=False, address=address, worker_id=worker_id,
                           max_restarts=restarts[0], max_task_retries=restarts[1])
        if core.actors.setdefault(actor_id, state) is state and address is not None:
            with core.lock:  # the address we were given may be stale: hear from the head too
                state.subscribe(core)
    return ActorHandle(actor_id, class_name, methods, creation_ref, name, restarts, specs)


def remote(*args, **options):
    """`@remote` / `@remote(**options)` on a function or a class."""
    if len(args) == 1 and not options and callable(args[0]):
        return _make_remote(args[0], {})
    if args:
        raise TypeError("@remote takes either a function/class or keyword options only")

    def decorator(obj):
        return _make_remote(obj, options)

    return decorator


def _make_remote(obj, options: dict):
    if inspect.isclass(obj):
        return ActorClass(obj, options)
    if callable(obj):
        return RemoteFunction(obj, options)
    raise TypeError(f"@remote needs a function or a class, got {type(obj).__name__}")


# ---- objects ------------------------------------------------------------------------------------------
def put(value) -> ObjectRef:
    if isinstance(value, ObjectRef):
        raise TypeError("put() of an ObjectRef is not allowed; pass the ref itself")
    return _core_or_init().put(value)


def get(refs, *, timeout: float | None = None):
    core = _core_or_init()
    if isinstance(refs, ObjectRef):
        return core.get([refs], timeout)[0]
    if isinstance(refs, (list, tuple)):
        for r in refs:
            if not isinstance(r, ObjectRef):
                raise TypeError(f"get() takes an ObjectRef or a list of them; the list holds a {type(r).__name__}")
        return core.get(list(refs), timeout)
    raise TypeError(f"get() takes an ObjectRef or a list of them, not {type(refs).__name__}")


def wait(refs, *, num_returns: int = 1, timeout: float | None = None, fetch_local: bool = True):
    """`(ready, not_ready)`: the first `num_returns` refs with values, in the order given.

    With `fetch_local=True` (Ray's default) a ready object held on another node is copied to
    this node's store before it is returned as ready (one that does not arrive before the
    timeout is returned as not ready); `fetch_local=False` returns it where it is."""
    if isinstance(refs, ObjectRef) or not isinstance(refs, (list, tuple)):
        raise TypeError(f"wait() takes a list of ObjectRefs, not {type(refs).__name__}")
    for r in refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(f"wait() takes a list of ObjectRefs; the list holds a {type(r).__name__}")
    if not refs:
        return [], []
    if len(set(refs)) != len(refs):
        raise ValueError("wait() got duplicate ObjectRefs")
    if not 0 <= num_returns <= len(refs):
        raise ValueError(f"num_returns must be between 0 and {len(refs)}, got {num_returns}")
    core = _core_or_init()
    return core.wait(list(refs), num_returns, timeout, bool(fetch_local))


def cancel(ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    if not isinstance(ref, ObjectRef):
        raise TypeError(f"cancel() takes an ObjectRef, not {type(ref).__name__}")
    _core().cancel(ref, force, recursive)


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Kills the actor at once (pending and later calls fail with ActorDiedError). With
    `no_restart=False` only its process is killed, as a crash would: it restarts if its
    `max_restarts` allows, as in Ray."""
    if not isinstance(actor, ActorHandle):
        raise TypeError(f"kill() takes an actor handle, not {type(actor).__name__}")
    core = _core()
    with core.lock:
        state = core.actors.get(actor._actor_id)
        if state is None:
            state = core.actors[actor._actor_id] = ActorState(actor._actor_id, actor._name,
                                                              actor._class_name, owned=False)
        if no_restart:
            state.kill(core)
        else:
            state.kill_to_restart(core)


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """A handle to the live actor named `name` in `namespace` (default: this job's), or
    ValueError. As in Ray, it does not keep the actor alive: a non-detached actor still dies
    with its creator's handles."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"get_actor() takes an actor's name (a non-empty string), got {name!r}")
    _check_namespace(namespace)
    core = _core()
    namespace = namespace or _namespace(core)
    view = core.call(core.head_address, P.ACTOR_LOOKUP, name, None, namespace, core.notice_token)
    if view is None or view["state"] == "DEAD":
        where = f" in namespace {namespace!r}" if namespace else ""
        raise ValueError(f"Failed to look up actor with name {name!r}{where}: no live actor of that name")
    return _handle_from_view(core, name, view)


def _handle_from_view(core, name: str | None, view: dict) -> ActorHandle:
    """A handle to the actor the head describes (`ACTOR_LOOKUP`'s answer), with the options
    its creator gave it."""
    info = view.get("info") or {}
    actor_id = view["actor_id"]
    class_name = info.get("class_name", "Actor")
    restarts = (int(info.get("max_restarts") or 0), int(info.get("max_task_retries") or 0))
    if actor_id not in core.actors:
        alive = view["state"] == "ALIVE"
        core.actors.setdefault(actor_id, ActorState(
            actor_id, name, class_name, owned=False, address=view["address"] if alive else None,
            worker_id=view["worker_id"] if alive else None, max_restarts=restarts[0],
            max_task_retries=restarts[1]))
    return ActorHandle(actor_id, class_name, info.get("methods", {}), None, name, restarts,
                       info.get("signatures"))


def current_actor() -> ActorHandle:
    """A handle to the actor this code runs in (`get_runtime_context().current_actor`). As in
    Ray it does not keep the actor alive."""
    core = _core()
    executor = core.executor
    instance = executor.actor if executor is not None else None
    if instance is None or task_context.actor_id is None:
        raise RuntimeError("current_actor is only available in an actor's methods")
    cls = type(instance)
    methods, specs = _actor_methods(cls)
    actor_id = task_context.actor_id
    if actor_id not in core.actors:
        core.actors.setdefault(actor_id, ActorState(actor_id, None, cls.__name__, owned=False,
                                                    address=core.address, worker_id=core.worker_id))
    return ActorHandle(actor_id, cls.__name__, methods, None, None, (0, 0), specs)


def get_runtime_context() -> RuntimeContext:
    core = _core()
    task_id = task_context.task_id
    actor_id = task_context.actor_id
    return RuntimeContext(node_id=core.node_id, worker_id=core.worker_id.hex(),
                          task_id=task_id.hex() if task_id else None,
                          actor_id=actor_id.hex() if actor_id else None,
                          job_mode="driver" if core.mode == "driver" else "worker",
                          namespace=_namespace(core) or "", task_name=task_context.task_name)


# ---- the cluster, from a task or the driver ----------------------------------------------------------
def _node_view() -> dict:
    core = _core()
    return core.call(core.head_address, P.NODE_LIST)


def _sum_resources(field: str) -> dict:
    total: dict = {}
    for node in _node_view().values():
        if node.get("alive", True):
            for key, value in (node.get(field) or {}).items():
                total[key] = total.get(key, 0.0) + float(value)
    return total


def cluster_resources() -> dict:
    """The resources of the live nodes, summed: `{"CPU": 4.0, "GPU": 1.0, "custom": 2.0}`."""
    return _sum_resources("total")


def available_resources() -> dict:
    """The resources of the live nodes not held by tasks or actors now, summed (as last
    reported by each node's heartbeat); a resource all in use is left out, as in Ray."""
    return {k: v for k, v in _sum_resources("available").items() if v > 0}


def get_gpu_ids() -> list:
    """The GPUs assigned to this worker. ownrun schedules `num_gpus` as a counted resource but
    does not assign device ids (nor set CUDA_VISIBLE_DEVICES): always `[]`."""
    _core()
    return []


def get_node_ip_address() -> str:
    """The IP address of this process's node (127.0.0.1 for a cluster on ipc:// sockets)."""
    from .rpc import addresses

    core = _core()
    address = core.daemon_address
    if addresses.is_ipc(address):
        return "127.0.0.1"
    return addresses.host(address)


def exit_actor() -> None:
    """Ends the actor this method runs in, as Ray's `exit_actor`: it raises SystemExit, which
    the executor turns into an intended exit (never restarted); the call in progress and later
    calls fail with ActorDiedError saying the actor exited. Outside an actor: TypeError."""
    core = object_ref.current_worker()
    if core is None or core.mode != "worker" or task_context.actor_id is None:
        raise TypeError("exit_actor() can only be called inside an actor method")
    log.info("actor %s exits (exit_actor)", task_context.actor_id.hex())
    exc = SystemExit(0)
    exc.ownrun_exit_reason = f"exit_actor() was called in {task_context.task_name or 'a method'}"
    raise exc


def list_named_actors(all_namespaces: bool = False) -> list:
    """The names of the live named actors in this job's namespace; with `all_namespaces=True`,
    `[{"name": ..., "namespace": ...}]` of every namespace, as Ray does ("" is the default)."""
    core = _core()
    pairs = core.call(core.head_address, P.ACTOR_NAMES)
    if all_namespaces:
        return [{"name": name, "namespace": namespace} for namespace, name in pairs]
    current = _namespace(core) or ""
    return [name for namespace, name in pairs if namespace == current]
