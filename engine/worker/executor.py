"""Running tasks pushed to this worker, and replying to their owners (§3 step 4).

Owns: the function cache, the queue of pushed tasks, the actor instance (if this worker
hosts one) with its concurrency mode (one thread in call order; a thread pool for
`max_concurrency > 1`; an asyncio loop for actors with `async def` methods; and per
concurrency group, a pool of its own threads or a limit on its coroutines), argument
resolution (inline values, shared-memory values zero-copy), return values (inline below
the threshold, else written to the node's store as the primary copy), the borrowed-ref
report in each reply, cancellation (a queued task is answered at once; a running one
through its `cancellation.TaskGuard`, which interrupts only the task's own code or its
blocked `get`/`wait`, and a recursive cancel goes on to the tasks it submitted), and this
worker's timeline events (a span per task and per shared-memory argument fetched:
state/spans.py).

Threading: `on_push`/`on_cancel` run on the thread reading the inbox with the state lock held
and only enqueue or mark: the I/O thread, or the main thread while it has nothing to run (it
reads the inbox itself then, `core.wait_idle`, so the push it runs next needs no hand-off);
tasks run on the main thread (or actor pool/loop threads).
Failures: a raising task replies with a `TaskError` carrying the traceback; an error
while resolving arguments or storing results is reported the same way, never dropped.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import pickle
import sys
import threading
import time
import traceback
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from .. import errors
from ..ids import return_id
from ..ownership.actor_submitter import EXITED
from ..ownership.memory_store import shm_value
from ..ownership.task_manager import ACTOR_CREATION, ACTOR_METHOD, NORMAL
from ..rpc import protocol as P
from ..rpc.protocol import (
    PUSH_CALLER,
    PUSH_DEP_META,
    PUSH_EXTRA,
    PUSH_FN_BLOB,
    PUSH_FN_ID,
    PUSH_KIND,
    PUSH_NAME,
    PUSH_NUM_ARG_FRAMES,
    PUSH_NUM_RETURNS,
    PUSH_POSITIONS,
    PUSH_TASK_ID,
)
from ..rpc.transport import pack
from ..state.spans import EVENTS
from ..util.handler_errors import log_handler_error
from . import serialization
from .cancellation import TaskGuard
from .context import task_context

log = logging.getLogger("ownrun.worker")


class _Exit(Exception):
    pass


class Executor:
    def __init__(self, core):
        self.core = core
        self.functions: dict[str, object] = {}
        self.queue: deque = deque()
        self.queue_lock = threading.Lock()
        # Set by every push queued here and by exit: until then the idle main thread reads the
        # inbox itself (`core.wait_idle`), so the push it runs next is read by the thread that
        # runs it (no wake-up and GIL hand-off from the I/O thread).
        self.arrived = threading.Event()
        self.actor = None
        self.actor_id: bytes | None = None
        self.actor_name: str | None = None
        self.actor_error: str | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.async_limit: asyncio.Semaphore | None = None
        # Concurrency groups (the actor's `concurrency_groups`): a pool each (threaded actor) or
        # a limit each (async actor); a call's group is its `.options(concurrency_group=)`, else
        # its method's `@method(concurrency_group=)`, else the default (the actor's own).
        self.group_pools: dict[str, ThreadPoolExecutor] = {}
        self.group_limits: dict[str, asyncio.Semaphore] = {}
        self.method_groups: dict[str, str] = {}
        self.function_blobs: dict[str, bytes] = {}  # sent but not loaded yet (see _keep_function)
        self.running: dict[bytes, TaskGuard] = {}  # task id -> its guard, while it runs
        self.running_async: dict[bytes, asyncio.Task] = {}  # an async actor's calls, while they run
        self.exiting = False
        self._modules_seen = len(sys.modules)
        self._known_modules = set(sys.modules)
        core.executor = self
        core.add_handler(P.PUSH_TASK, self.on_push)
        core.add_handler(P.CANCEL_TASK, self.on_cancel)
        core.add_handler(P.EXIT_WORKER, self.on_exit)
        core.add_handler(P.REAP_QUERY, self.on_reap_query)

    def holds_lease(self) -> bool:
        return True

    # ---- I/O thread side ------------------------------------------------------------------
    def on_push(self, h, frames) -> None:
        if h[PUSH_KIND] == ACTOR_METHOD and (self.pool is not None or self.loop is not None or self.group_pools):
            pool = self._pool_of(h)
            if pool is not None:
                pool.submit(self.execute, h, frames)
                return
            if self.loop is not None:
                asyncio.run_coroutine_threadsafe(self._execute_async(h, frames), self.loop)
                return
        with self.queue_lock:
            self.queue.append((h, frames))
        self.arrived.set()

    @staticmethod
    def _asked_group(h) -> str | None:
        """The concurrency group the call's `.options(concurrency_group=)` names, if any."""
        extra = h[PUSH_EXTRA]
        return extra.get("concurrency_group") if extra else None

    def _group_of(self, h) -> str | None:
        """The call's concurrency group: the one it asks for, else its method's (None: default)."""
        group = self._asked_group(h)
        return group if group is not None else self.method_groups.get(h[PUSH_FN_ID])

    def _pool_of(self, h) -> ThreadPoolExecutor | None:
        """The thread pool that runs this actor call: its concurrency group's, else the actor's
        (max_concurrency > 1); None: the main thread (in call order) or the actor's loop."""
        group = self._group_of(h)
        if group is not None and self.group_pools:
            pool = self.group_pools.get(group)
            if pool is not None:
                return pool
        return self.pool

    def _group_limit(self, h) -> asyncio.Semaphore | None:
        """An async actor call's limit: its concurrency group's, else the actor's."""
        group = self._group_of(h)
        return self.group_limits.get(group, self.async_limit) if group is not None else self.async_limit

    def on_cancel(self, h, frames) -> None:
        """[CANCEL_TASK, task_id, force, recursive?]: from the task's owner."""
        task_id, force = h[P.CANCEL_TASK_ID], h[P.CANCEL_FORCE]
        recursive = P.optional(h, P.CANCEL_RECURSIVE, True)
        with self.queue_lock:
            for item in self.queue:
                if item[0][2] == task_id:
                    self.queue.remove(item)
                    self._keep_function(item[0])  # the owner counts it as sent to this worker
                    self._reply_error(item[0], errors.TaskCancelledError(f"task {item[0][3]} was cancelled"),
                                      [], lock_held=True)
                    return
        if self.loop is not None:  # an async actor: cancel the call's asyncio task (Ray)
            task = self.running_async.get(task_id)
            if task is not None:
                self.loop.call_soon_threadsafe(task.cancel)
            return
        guard = self.running.get(task_id)
        if guard is None:
            return  # finished already (or waits in a threaded actor's pool: best effort, as Ray)
        if self.actor_id is not None:  # a running actor call is only told (is_canceled()), as in Ray
            guard.request()
        else:
            if force:  # the task may not check for interrupts (its children fate-share with us)
                os._exit(1)
            guard.cancel()
        if recursive:  # the tasks it submitted, which this process owns
            self.core.cancel_tasks(guard.children, force, recursive)

    def _keep_function(self, h) -> None:
        """A task dropped before it ran may be the one that brought its function: the owner
        sends later tasks of that function without it, so keep the pickled function."""
        fn_id, fn_blob = h[PUSH_FN_ID], h[PUSH_FN_BLOB]
        if fn_blob is not None and fn_id not in self.functions:
            self.function_blobs.setdefault(fn_id, fn_blob)

    def on_reap_query(self, h, frames) -> None:
        """The daemon would stop this idle worker: only if it owns no objects and no tasks."""
        may_exit = not (self.queue or self.running or self.core.owns_anything())
        self.core.transport.send(self.core.daemon_address, [pack([P.REAP_ANSWER, self.core.worker_id, may_exit])])

    def on_exit(self, h, frames) -> None:
        """Only this worker's own daemon may stop it (it does so for idle pooled workers)."""
        if h[P.EXIT_FROM_DAEMON] != self.core.daemon_address:
            log.warning("EXIT_WORKER from %s ignored: not this worker's daemon", h[P.EXIT_FROM_DAEMON][:80])
            return
        with self.queue_lock:
            self.exiting = True
        self.arrived.set()

    # ---- main loop ------------------------------------------------------------------------------
    def run(self) -> None:
        arrived = self.arrived
        while True:
            arrived.clear()  # before looking at the queue: a push after the look sets it
            if not self.queue and not self.exiting:
                self.core.wait_idle(arrived)
            with self.queue_lock:
                if not self.queue:
                    if self.exiting:
                        return
                    continue  # woken for a push a cancel has taken back since: wait again
                h, frames = self.queue.popleft()
            if h[PUSH_KIND] == ACTOR_METHOD and (self.loop is not None or self._pool_of(h) is not None):
                self.on_push(h, frames)  # arrived before the constructor set up concurrency
                continue
            try:
                self.execute(h, frames)
            except Exception:  # noqa: BLE001 - e.g. a reply that cannot be sent: keep serving
                self.core.handler_errors += 1
                log_handler_error(log, "failed to run or answer task %r", h[PUSH_NAME])

    # ---- one task -------------------------------------------------------------------------------
    def _function(self, h):
        kind, fn_id, fn_blob = h[PUSH_KIND], h[PUSH_FN_ID], h[PUSH_FN_BLOB]
        if kind == ACTOR_METHOD:
            if self.actor is None:
                raise errors.ActorDiedError(self.actor_error or "the actor was not created")
            group = self._asked_group(h)
            if group is not None and group not in self.group_pools and group not in self.group_limits:
                raise ValueError(f"actor {self.actor_name} has no concurrency group {group!r} (it has: "
                                 f"{sorted(self.group_pools or self.group_limits) or 'none'})")
            return _method(self.actor, fn_id)
        fn = self.functions.get(fn_id)
        if fn is None:
            blob = fn_blob if fn_blob is not None else self.function_blobs.get(fn_id)
            if blob is None:
                raise errors.EngineError(f"function {h[PUSH_NAME]} was not sent to this worker")
            self.function_blobs[fn_id] = blob  # if loading fails, the next task tries again
            fn = self.functions[fn_id] = pickle.loads(blob)
            del self.function_blobs[fn_id]
        return fn

    def _arguments(self, h, frames, received: list):
        n_args, positions, dep_meta = h[PUSH_NUM_ARG_FRAMES], h[PUSH_POSITIONS], h[PUSH_DEP_META]
        if n_args == 0:  # no pickled arguments: only refs, positional ones first (or none at all)
            args, kwargs = [None] * sum(type(where) is int for where in positions), {}
        else:
            args, kwargs = serialization.deserialize(frames[1:1 + n_args], received)
        if dep_meta:
            pos = 1 + n_args
            loads, inline = pickle.loads, P.VALUE_INLINE
            packed, offset = None, 0
            for where, meta in zip(positions, dep_meta, strict=True):
                if type(meta) is int:  # a small pickle's length: packed in the last frame
                    if packed is None:
                        packed = memoryview(frames[-1])
                    if offset + meta > len(packed):
                        raise errors.EngineError(f"task {h[PUSH_NAME]}: its packed arguments are "
                                                 f"shorter than their metadata (malformed push)")
                    value = loads(packed[offset:offset + meta])
                    offset += meta
                elif meta[0] == inline:  # [kind, frames, refs inside, oid]
                    n = meta[1]
                    if n == 1 and not meta[2]:  # one pickle, no refs inside: most arguments
                        value = loads(frames[pos])
                    else:
                        value = serialization.deserialize(frames[pos:pos + n], received if meta[2] else None)
                    pos += n
                else:
                    value = self._fetch(h[PUSH_NAME], meta)
                if type(where) is int:
                    args[where] = value
                else:
                    kwargs[where] = value
            if pos != len(frames) - (packed is not None) or (packed is not None and offset != len(packed)):
                raise errors.EngineError(f"task {h[PUSH_NAME]}: its argument frames do not match their "
                                         f"metadata (malformed push)")
        return args, kwargs

    def _fetch(self, task_name: str, meta):
        """A shared-memory argument, read from this node's store (pulled from another node
        first if needed): a "fetch" span on the timeline."""
        _, node_id, size, _contains, oid, daemon, owner = meta
        started = time.perf_counter()
        try:
            value = self.core._materialize(oid, shm_value(node_id, size, daemon), owner=owner)
        except BaseException as exc:
            EVENTS.append(("fetch", oid, task_name, size, started, time.perf_counter(), type(exc).__name__))
            raise
        EVENTS.append(("fetch", oid, task_name, size, started, time.perf_counter(), None))
        return value

    def execute(self, h, frames) -> None:
        task_id, name, kind = h[PUSH_TASK_ID], h[PUSH_NAME], h[PUSH_KIND]
        received: list = []
        results = args = kwargs = value = None
        failed = False
        streaming = kind == NORMAL and bool(h[PUSH_EXTRA]) and bool(h[PUSH_EXTRA].get("streaming"))
        started = time.perf_counter()
        guard = self.running[task_id] = TaskGuard(task_id, name)
        guard.start()
        extra = h[PUSH_EXTRA]  # the job's namespace (normal tasks, if not the default), creation options
        token = task_context.enter(task_id, name, self.actor_id, extra.get("namespace") if extra else None,
                                   _placement_group(extra) if extra and "placement_group" in extra else None)
        try:
            fn = self._function(h)
            try:
                args, kwargs = self._arguments(h, frames, received)
            except errors.ObjectLostError as exc:
                raise ArgumentLostError(str(exc)) from None
            if kind == ACTOR_CREATION:
                results = [self._create_actor(fn, args, kwargs, h[PUSH_EXTRA] or {})]
            elif streaming:
                value = fn(*args, **kwargs)
                args = kwargs = None
                self._stream(h, value, received)  # a cancel wakes its blocked get/wait only
                if guard.cancelled:
                    raise guard.error()
                results = []
            else:
                guard.enter_user()  # a cancel may interrupt the task from here...
                try:
                    value = fn(*args, **kwargs)
                finally:
                    guard.leave_user()  # ...to here (or raise its TaskCancelledError here)
                # A task that handled the cancel's KeyboardInterrupt and returned, returns (Ray).
                results = _split_returns(value, h[PUSH_NUM_RETURNS])
        except errors.TaskCancelledError:
            results = _CancelledMarker(name)
            failed = True
        except SystemExit as exc:
            if kind != ACTOR_METHOD:
                failed = True
                results = _failure(name, exc)
            else:
                self._exit_actor(name, exc)  # does not return
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the owner
            failed = True
            if kind == ACTOR_CREATION:
                self.actor_error = f"the actor's constructor raised {type(exc).__name__}: {exc}"
            results = _failure(name, exc)
        finally:
            # Drop our references before the borrowed-ref report: it must see only what the
            # task itself kept.
            args = kwargs = value = fn = None
            self.running.pop(task_id, None)
            guard.finish()
            task_context.exit(token)
        box = [results]
        results = None
        if len(sys.modules) != self._modules_seen:
            self._report_new_modules()
        ended = time.perf_counter()
        EVENTS.append(("task", task_id, name, h[PUSH_CALLER], started, ended, failed))  # the timeline's ring buffer
        self._reply(h, box, received, ended - started, streaming)

    def _report_new_modules(self) -> None:
        """Modules this task imported (its function's module, cv2, ...): the zygote imports
        them too, so the next workers it forks start with them loaded."""
        modules = set(sys.modules)
        self._modules_seen = len(modules)
        new = [m for m in modules - self._known_modules
               if not any(part.startswith("_") for part in m.split("."))
               and getattr(sys.modules.get(m), "__file__", None)]
        self._known_modules = modules
        if new:
            self.core.transport.send(self.core.daemon_address, [pack([P.WARM_MODULES, sorted(new)[:500]])])

    async def _execute_async(self, h, frames) -> None:
        task_id, name = h[PUSH_TASK_ID], h[PUSH_NAME]
        received: list = []
        failed = False
        started = time.perf_counter()
        token = task_context.enter(task_id, name, self.actor_id)
        self.running_async[task_id] = asyncio.current_task()
        try:
            async with self._group_limit(h):
                fn = self._function(h)
                args, kwargs = self._arguments(h, frames, received)
                value = fn(*args, **kwargs)
                if inspect.isawaitable(value):
                    value = await value
                results = _split_returns(value, h[PUSH_NUM_RETURNS])
        except SystemExit as exc:
            self._exit_actor(name, exc)  # does not return
        except asyncio.CancelledError:  # engine.cancel() of this call
            failed = True
            results = _CancelledMarker(name)
        except BaseException as exc:  # noqa: BLE001
            failed = True
            results = _failure(name, exc)
        finally:
            args = kwargs = value = fn = None
            self.running_async.pop(task_id, None)
            task_context.exit(token)
        box = [results]
        results = None
        EVENTS.append(("task", task_id, name, h[PUSH_CALLER], started, time.perf_counter(), failed))
        self._reply(h, box, received)

    def _exit_actor(self, method: str, exc: SystemExit) -> None:
        """`sys.exit()` (or `exit_actor()`) in an actor method: the actor exits, as in Ray. With
        code 0 (or None) it is an intended exit: the daemon is asked to end this process
        naming why (every caller's ActorDiedError says it exited, and it is not restarted);
        any other code is a crash like any other (restarted if `max_restarts` allows). The
        call in progress gets no reply: its caller fails it with the actor's death."""
        code = exc.code
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - exiting anyway
                pass
        if code not in (None, 0):
            os._exit(code if isinstance(code, int) else 1)
        core = self.core
        why = getattr(exc, "ownrun_exit_reason", None) or f"sys.exit() in {method}"
        core.transport.send(core.daemon_address, [pack([
            P.KILL_WORKER, core.worker_id, f"{EXITED} ({why})", core.address])])
        time.sleep(30)  # the daemon's kill lands first; exit anyway if it never does
        os._exit(0)

    def _create_actor(self, cls, args, kwargs, options: dict):
        self.actor_id = options.get("actor_id")
        self.actor_name = options.get("name") or cls.__name__
        task_context.set_actor(self.actor_id, self.actor_name, options.get("namespace"))
        if "placement_group" in options:
            task_context.actor_placement_group = _placement_group(options)
        instance = cls(*args, **kwargs)
        # The instance first, then the pool or loop: a call pushed meanwhile goes to the main
        # queue (and on to the pool once this task ends); one pushed after the pool exists
        # finds the instance there. Never "not created" for a call arriving mid-construction.
        self.actor = instance
        is_async = any(inspect.iscoroutinefunction(m) for _, m in inspect.getmembers(cls, inspect.isfunction))
        max_concurrency = options.get("max_concurrency") or (1000 if is_async else 1)
        if is_async:
            self.loop = asyncio.new_event_loop()
            self.async_limit = asyncio.Semaphore(max_concurrency)
            threading.Thread(target=self.loop.run_forever, name="ownrun-actor-loop", daemon=True).start()
        elif max_concurrency > 1:
            self.pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="ownrun-actor")
        groups = options.get("concurrency_groups") or {}
        self.method_groups = {name: getattr(m, "__ownrun_method_options__", {}).get("concurrency_group")
                              for name, m in inspect.getmembers(cls, callable)}
        self.method_groups = {k: v for k, v in self.method_groups.items() if v is not None}
        if is_async:  # a group is a limit on its coroutines, beside the actor's
            self.group_limits = {name: asyncio.Semaphore(size) for name, size in groups.items()}
        else:  # a group is a pool of its own threads (the default group: as without groups)
            self.group_pools = {name: ThreadPoolExecutor(size, thread_name_prefix=f"ownrun-{name}")
                                for name, size in groups.items()}
        self.core.transport.send(self.core.head_address, [pack([
            P.ACTOR_UPDATE, self.actor_id, "ALIVE", self.core.address, None, self.core.worker_id,
            options.get("actor_key")])])  # the creator's key: the head obeys no other (rpc/notices.py)
        return None

    # ---- replies --------------------------------------------------------------------------------
    def _stream(self, h, generator, received: list) -> None:
        """Runs a streaming task's generator: each item goes to the caller as it is yielded
        (GENERATOR_ITEM, in order). An exception propagates (the reply carries it)."""
        if not hasattr(generator, "__next__"):
            raise TypeError(f"{h[PUSH_NAME]} has num_returns='streaming' but returned "
                            f"{type(generator).__name__}, not a generator")
        caller, task_id, core = h[PUSH_CALLER], h[PUSH_TASK_ID], self.core
        for index, item in enumerate(generator, start=1):
            meta, frames, contains = self._return_value(h, index, item)
            item = None
            with core.lock:
                if contains:
                    core.refs.register_borrower(contains, caller)
                core.transport.send(caller, [pack([P.GENERATOR_ITEM, core.address, task_id, index, meta]),
                                             *frames])

    def _return_value(self, h, index: int, value) -> tuple[list, list, list | None]:
        """(meta, frames, contained refs) of return `index` of task `h`: inline, or written to
        this node's store; a value that cannot be serialized becomes its error."""
        core = self.core
        if isinstance(value, _Failure):
            f = _serialize_error(value.error)
            lost = "arg_lost" if isinstance(value.error, ArgumentLostError) else None
            return [P.VALUE_ERROR, len(f), None, lost], f, None
        try:
            f, contains = serialization.serialize(value)
            size = serialization.frames_size(f)
            if size < core.inline_threshold:
                return [P.VALUE_INLINE, len(f), contains], f, contains
            core._write_shm(return_id(h[PUSH_TASK_ID], index), f, h[PUSH_CALLER])
            return [P.VALUE_SHM, core.node_id, size, contains, core.daemon_address], [], contains
        except BaseException as exc:  # noqa: BLE001
            f = _serialize_error(_failure(h[PUSH_NAME], exc)[0].error)
            return [P.VALUE_ERROR, len(f), None], f, None

    def _reply(self, h, box: list, received: list, runtime: float | None = None,
               streaming: bool = False) -> None:
        """Sends the task's results; `box` holds them so that we drop the last reference.
        A streaming task's reply carries no value (its items went ahead), or its error."""
        results = box.pop()
        caller, task_id = h[PUSH_CALLER], h[PUSH_TASK_ID]
        core = self.core
        metas, frames, contains_all = [], [], []
        if isinstance(results, _CancelledMarker):
            results = _failure(results.name, errors.TaskCancelledError(f"task {results.name} was cancelled"))
        if len(results) == 1 and isinstance(results[0], _Failure) and h[PUSH_NUM_RETURNS] != 1 and not streaming:
            results = results * h[PUSH_NUM_RETURNS]
        for index, value in enumerate(results, start=1):
            meta, f, contains = self._return_value(h, index, value)
            metas.append(meta)
            frames.extend(f)
            if contains:
                contains_all.extend(contains)
        del results
        with core.lock:
            core._apply_ref_ops()
            if contains_all:
                core.refs.register_borrower(contains_all, caller)
            borrowed = core.refs.still_borrowed(received, caller) if received else None
            core.transport.send(caller, [pack([P.TASK_REPLY, core.address, task_id, metas, borrowed,
                                               core.worker_id, runtime]), *frames])

    def _reply_error(self, h, exc: BaseException, received: list, lock_held: bool = False) -> None:
        f = _serialize_error(exc)
        metas = [[P.VALUE_ERROR, len(f), None]] * h[PUSH_NUM_RETURNS]
        frames = f * h[PUSH_NUM_RETURNS]
        header = pack([P.TASK_REPLY, self.core.address, h[PUSH_TASK_ID], metas, None, self.core.worker_id, None])
        self.core.transport.send(h[PUSH_CALLER], [header, *frames])


class ArgumentLostError(errors.ObjectLostError):
    """An argument's only copy was on a node that died; the owner rebuilds it and retries."""


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error):
        self.error = error


class _CancelledMarker:
    def __init__(self, name):
        self.name = name


def _failure(name: str, exc: BaseException) -> list:
    if isinstance(exc, errors.EngineError) and not isinstance(exc, errors.TaskError):
        err = exc
    else:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        err = errors.TaskError(name, tb, exc)
    _drop_tracebacks(exc)
    return [_Failure(err)]


def _drop_tracebacks(exc: BaseException | None) -> None:
    """Tracebacks hold the task's frames and so its arguments (borrowed refs): drop them."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__


def _serialize_error(err: BaseException) -> list:
    try:
        return serialization.serialize(err)[0]
    except BaseException as exc:  # noqa: BLE001 - the cause may not pickle: keep the traceback text
        if isinstance(err, errors.TaskError):
            cause = errors.EngineError(f"the exception {type(err.cause).__name__} the task raised isn't "
                                       f"serializable ({type(exc).__name__}: {exc}); its traceback is above")
            return serialization.serialize(errors.TaskError(err.function_name, err.traceback_str, cause))[0]
        return serialization.serialize(errors.EngineError(f"{type(err).__name__}: {err}"))[0]


def _split_returns(value, num_returns: int) -> list:
    if num_returns == 1:
        return [value]
    if num_returns == 0:
        return []
    try:
        values = list(value)
    except TypeError:
        raise ValueError(f"the task has num_returns={num_returns} but returned a {type(value).__name__}") from None
    if len(values) != num_returns:
        raise ValueError(f"the task has num_returns={num_returns} but returned {len(values)} values")
    return values


def _method(instance, name: str):
    """Method `name` of `instance`, looked up on its class (as Ray does): an instance attribute
    of the same name does not hide it."""
    attrs = getattr(instance, "__dict__", None)
    if attrs is None or name not in attrs:  # the common case, at getattr's cost
        try:
            return getattr(instance, name)
        except AttributeError:
            special = _RAY_METHODS.get(name)  # every actor has these (api.RAY_ACTOR_METHODS)
            if special is None:
                raise
            return functools.partial(special, instance)
    try:
        raw = inspect.getattr_static(type(instance), name)
    except AttributeError:
        return getattr(instance, name)  # e.g. provided by __getattr__
    get = getattr(type(raw), "__get__", None)
    return raw if get is None else get(raw, instance, type(instance))


def _ray_terminate(instance):
    exc = SystemExit(0)
    exc.ownrun_exit_reason = "__ray_terminate__() was called"
    raise exc


_RAY_METHODS = {
    "__ray_ready__": lambda instance: True,
    "__ray_call__": lambda instance, fn, *args, **kwargs: fn(instance, *args, **kwargs),
    "__ray_terminate__": _ray_terminate,
}


def _placement_group(extra: dict) -> tuple:
    """(PlacementGroup, capture child tasks) from a task's extra ([group hex, bundles, capture])."""
    from ..util.placement_group import PlacementGroup, PlacementGroupID

    pg_hex, bundles, capture = extra["placement_group"]
    return PlacementGroup(PlacementGroupID(bytes.fromhex(pg_hex)), bundles), bool(capture)
