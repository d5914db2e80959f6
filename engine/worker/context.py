"""What is running where: the current task, actor, worker and node of each thread.

Owns the per-thread task context behind `engine.get_runtime_context()` and the prefix
that worker output lines carry to the driver's terminal. Thread-safe (thread-local).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class RuntimeContext:
    """Ray-compatible runtime context: ids of the node, worker, task and actor."""

    node_id: str | None
    worker_id: str | None
    task_id: str | None
    actor_id: str | None
    job_mode: str
    namespace: str = ""
    task_name: str | None = None

    def get_namespace(self) -> str:
        return self.namespace

    def get_node_id(self) -> str | None:
        return self.node_id

    def get_worker_id(self) -> str | None:
        return self.worker_id

    def get_task_id(self) -> str | None:
        return self.task_id

    def get_actor_id(self) -> str | None:
        return self.actor_id

    def get_task_name(self) -> str | None:
        """The running task's name: the function's (or `options(name=)`), `Class.method` for
        an actor call (or its `options(name=)`)."""
        return self.task_name

    def is_canceled(self) -> bool:
        """Whether the task or actor call this thread runs was cancelled (`engine.cancel`): a
        running actor call is not interrupted, it polls this (as in Ray). RuntimeError outside
        a task and in an async actor's calls (as Ray)."""
        from . import cancellation

        guard = cancellation.current()
        if guard is None:
            raise RuntimeError("is_canceled() is only available in a task or a threaded actor's method")
        return guard.requested or guard.cancelled

    @property
    def current_actor(self):
        """A handle to the actor this code runs in (RuntimeError outside an actor), as in Ray."""
        from ..api import current_actor

        return current_actor()


class _TaskContext(threading.local):
    task_id: bytes | None = None
    name: str | None = None
    namespace: str | None = None
    placement_group: tuple | None = None  # (PlacementGroup, capture child tasks) it runs in

    def __init__(self):
        self.task_id = None
        self.name = None
        self.namespace = None
        self.placement_group = None


class TaskContextManager:
    """Tracks the task each thread runs and the actor this process hosts."""

    def __init__(self):
        self._local = _TaskContext()
        self.actor_id: bytes | None = None
        self.actor_name: str | None = None
        self.actor_namespace: str | None = None  # the namespace the hosted actor was created in
        self.actor_placement_group: tuple | None = None  # (PlacementGroup, capture) of the hosted actor

    def enter(self, task_id: bytes, name: str, actor_id: bytes | None, namespace: str | None = None,
              placement_group: tuple | None = None):
        local = self._local
        previous = (local.task_id, local.name, local.namespace, local.placement_group)
        local.task_id, local.name, local.namespace, local.placement_group = task_id, name, namespace, placement_group
        return previous

    def exit(self, token) -> None:
        local = self._local
        local.task_id, local.name, local.namespace, local.placement_group = token

    @property
    def placement_group(self) -> tuple | None:
        """(PlacementGroup, capture child tasks) the task this thread runs is in, or None."""
        return self._local.placement_group or self.actor_placement_group

    def set_actor(self, actor_id: bytes | None, name: str | None, namespace: str | None = None) -> None:
        self.actor_id, self.actor_name, self.actor_namespace = actor_id, name, namespace

    @property
    def namespace(self) -> str | None:
        """The namespace of the job whose task this thread runs (None: the default one)."""
        return self._local.namespace or self.actor_namespace

    @property
    def task_id(self) -> bytes | None:
        return self._local.task_id

    @property
    def task_name(self) -> str | None:
        return self._local.name

    def output_prefix(self, pid: int) -> str:
        if self.actor_name:
            return f"{self.actor_name} pid={pid}"
        name = self._local.name
        return f"{name} pid={pid}" if name else f"worker pid={pid}"


task_context = TaskContextManager()
