"""The exceptions users of ownrun see.

Owns: every typed error the runtime raises to user code, and the one rule that turns a
remote exception into a `TaskError` that is also an instance of the user's exception class
(a class that refuses subclasses gets a plain TaskError, and one warning per class).
Each message says what failed and why, in one line where possible.
"""

from __future__ import annotations

import logging


class EngineError(Exception):
    """Base class of every error raised by the ownrun runtime."""


class TaskError(EngineError):
    """A task raised. Carries the remote traceback; `cause` is the original exception."""

    def __init__(self, function_name: str, traceback_str: str, cause: BaseException | None = None):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        super().__init__(function_name, traceback_str, cause)

    def __str__(self) -> str:
        return f"task {self.function_name} failed:\n{self.traceback_str.rstrip()}"

    def __reduce__(self):
        return (_rebuild_task_error, (self.function_name, self.traceback_str, self.cause))

    def as_instanceof_cause(self) -> TaskError:
        """A TaskError that is also an instance of the cause's class (so `except ValueError` works);
        for a task that failed because a task it waited on did, of the innermost cause's class."""
        root = self.cause
        while isinstance(root, TaskError) and root.cause is not None:
            root = root.cause
        cause_cls = type(root) if root is not None else None
        if cause_cls is None or isinstance(self, cause_cls) or not _subclassable(cause_cls):
            return self
        try:
            cls = _dual_classes.get(cause_cls)
            if cls is None:
                cls = type(f"TaskError({cause_cls.__name__})", (TaskError, cause_cls), {
                    "__init__": _dual_init,
                    "__str__": TaskError.__str__,
                    "__reduce__": TaskError.__reduce__,
                    "__getattr__": _cause_attribute,  # e.errno, e.one: the cause's, as in Ray
                })
                _dual_classes[cause_cls] = cls
            return cls(self.function_name, self.traceback_str, self.cause)
        except TypeError:  # a class that refuses subclasses (`__init_subclass__` raising, ...)
            if cause_cls not in _final_warned:
                _final_warned.add(cause_cls)
                logging.getLogger(__name__).warning(
                    "the exception class %s cannot be subclassed: it is raised as TaskError only; "
                    "use `task_error.cause` to get the %s the task raised",
                    cause_cls.__qualname__, cause_cls.__name__)
            return self


    make_dual_exception_instance = as_instanceof_cause  # Ray's name


_dual_classes: dict[type, type] = {}
_final_warned: set = set()  # exception classes that refused a subclass: warned about once


def _cause_attribute(self, name: str):
    cause = self.__dict__.get("cause")
    if cause is None or name.startswith("__"):
        raise AttributeError(name)
    return getattr(cause, name)


def _dual_init(self, function_name, traceback_str, cause):
    # Not through the cause class's __init__, which may take other arguments (as Ray does).
    self.function_name = function_name
    self.traceback_str = traceback_str
    self.cause = cause
    self.args = (function_name, traceback_str, cause)


def _subclassable(cls: type) -> bool:
    return cls.__module__ != "builtins" or cls.__name__ not in {"bool", "NoneType"}


def _rebuild_task_error(function_name, traceback_str, cause):
    return TaskError(function_name, traceback_str, cause).as_instanceof_cause()


class WorkerCrashedError(EngineError):
    """The worker running a task died (after all retries were used)."""


class GetTimeoutError(EngineError, TimeoutError):
    """`get` or `wait` did not complete within its timeout."""


class TaskCancelledError(EngineError):
    """The task was cancelled with `engine.cancel` before it finished."""


class TaskInterrupted(TaskCancelledError, KeyboardInterrupt):
    """What a non-forced cancel raises inside the running task (cancellation.py): a
    TaskCancelledError that is also the KeyboardInterrupt Ray raises there, so code written for
    Ray (`except KeyboardInterrupt:`) sees it. A task that handles it and returns, returns."""


class TaskUnschedulableError(EngineError):
    """No node may run the task: `NodeAffinitySchedulingStrategy(soft=False)` names a node that
    is not (or no longer) alive, or lacks the task's resources."""


PLACEMENT_GROUP_REMOVED = "its placement group was removed"  # in the reasons daemons give


class TaskPlacementGroupRemoved(TaskUnschedulableError):
    """The placement group the task was to run in was removed (before or while it ran): it is
    not retried (Ray's name)."""


class ActorClassInheritanceException(TypeError):
    """`class B(A)` where `A` is an actor class (Ray's name and message)."""


class ActorDiedError(EngineError):
    """The actor is dead; the message carries the reason (killed, crashed, owner died)."""


class ObjectStoreFullError(EngineError):
    """The node's shared-memory store could not make room: everything left is pinned."""


class ObjectLostError(EngineError):
    """An object's copies are gone and it cannot be rebuilt."""


class ObjectReconstructionFailedError(ObjectLostError):
    """A lost object could not be rebuilt: its task has no retries left."""


class OwnerDiedError(ObjectLostError):
    """The process that owned an object died; the object died with it (fate-sharing)."""


class ObjectFreedError(ObjectLostError):
    """The object was freed because nothing referenced it any more."""


class RuntimeNotInitializedError(EngineError):
    """An engine call was made before `engine.init()` or after `engine.shutdown()`."""


class AlreadyInitializedError(EngineError, RuntimeError):
    """`engine.init()` was called again without `ignore_reinit_error=True` (Ray raises RuntimeError)."""


class SerializationError(EngineError, TypeError):
    """A value could not be serialized (pickled) to be sent to another process."""


class NodeUnreachableError(EngineError):
    """A process of the cluster (head, node daemon) did not answer in time."""


class LocalNodeDiedError(EngineError):
    """The node daemon of this process's own node died: every pending and later call fails."""


class ClusterError(EngineError):
    """A cluster cannot be started, found, joined or changed; the message says why and what to do."""


class NodeStartError(ClusterError):
    """A process of the cluster (the head, a node daemon) did not start. The first line names
    it, why, the last line of its log and the log's path; the lines after quote the log's end."""

    def __init__(self, name: str, reason: str, log_path: str, log_tail: list[str]):
        self.name = name
        self.reason = reason
        self.log_path = log_path
        self.log_tail = list(log_tail)
        last = self.log_tail[-1].strip() if self.log_tail else "(empty log)"
        quoted = "".join(f"\n  {line}" for line in self.log_tail)
        super().__init__(f"{name} did not start ({reason}): {last} (log: {log_path}){quoted}")

    def __reduce__(self):
        return (type(self), (self.name, self.reason, self.log_path, self.log_tail))
