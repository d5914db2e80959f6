"""Cancelling a running task without force: interrupt it, never anything else (issue 12 item 4).

Owns `TaskGuard`, one per task an executor thread runs, and the rule for delivering a
non-forced cancel to it:

1. The cancel marks the guard cancelled (`cancel`, I/O thread) and wakes the `get`/`wait`
   the task is blocked in, if any: that call sees the mark and raises `TaskCancelledError`
   in the task (objects.py asks `current()` before and after blocking).
2. Only while the task's *own* code runs (not engine code it called: `get`, `put`,
   `.remote()`, ...) is `TaskCancelledError` also injected as an asynchronous exception
   (`PyThreadState_SetAsyncExc`), which interrupts Python code that never calls the engine.
3. "Runs user code" is a one-item list, the token: entering user code appends it, leaving
   pops it, and a cancel pops it before injecting. `list.pop` is atomic under the GIL, so
   exactly one side wins: if the thread left first, nothing is injected; if the cancel
   won, the thread waits until the injection is done and takes it back if it has not been
   raised yet: it replaces it with `_Retracted` and raises that in itself at once, where
   it is caught (clearing with `PyThreadState_SetAsyncExc(tid, NULL)` instead would leave
   CPython's eval breaker set for good: every thread on the slow path from then on). So the
   exception can only land in
   the task's code or in `leave_user` itself, which the executor and the engine calls
   treat as the task being cancelled — never in the next task or mid ref-count update.
4. Returning from an engine call into user code re-checks the mark (`enter_user` raises).

`children` lists the tasks this task submitted (owned by this process), for a recursive
cancel (Ray's default).

Thread-safety: `cancel` runs on the I/O thread, everything else on the task's own thread;
the token is the only state both change and they do so with single atomic list operations.
Failures: `TaskInterrupted` (a TaskCancelledError and, as Ray raises, a KeyboardInterrupt)
raised in the task's thread, by design. A task that handles it and returns a value returns
that value (as in Ray); `get_runtime_context().is_canceled()` tells it it was cancelled.
"""

from __future__ import annotations

import ctypes
import threading
import time

from .. import errors

_local = threading.local()


def _set_async_exc(ident: int, exc_type: type) -> None:
    """Raises `exc_type` in thread `ident` at its next eval-breaker check (replacing a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc_type))


class _Retracted(BaseException):
    """Replaces a cancel's exception that had not fired yet; raised and caught in `leave_user`."""


def _checkpoint() -> None:
    for _ in range(3):  # a backward jump: CPython checks for asynchronous exceptions here
        pass


def current() -> TaskGuard | None:
    """The guard of the task this thread runs (None in the driver or between tasks)."""
    return getattr(_local, "guard", None)


class TaskGuard:
    """One running task's cancellation state. See the module docstring for the protocol."""

    __slots__ = ("task_id", "name", "ident", "cancelled", "requested", "waiter", "children", "_token",
                 "_injected", "_in_user")

    def __init__(self, task_id: bytes, name: str):
        self.task_id = task_id
        self.name = name
        self.ident = threading.get_ident()
        self.cancelled = False
        self.requested = False  # an actor call's cancel: only `is_canceled()` tells it (Ray)
        self.waiter = None  # the Waiter of a get/wait the task is blocked in
        self.children: list[bytes] = []  # task ids this task submitted
        self._token: list = []
        self._injected = False
        self._in_user = False  # written by the task's thread only

    # ---- the task's thread -----------------------------------------------------------------
    def start(self) -> None:
        _local.guard = self

    def finish(self) -> None:
        _local.guard = None

    def enter_user(self) -> None:
        """User code runs from here on: a cancel interrupts it. Raises if cancelled already."""
        self._in_user = True
        self._token.append(True)
        if self.cancelled:
            self.leave_user()
            raise self.error()

    def leave_user(self) -> None:
        """Engine code runs from here on: no exception will be injected and none is pending
        when this returns. May raise the cancel's `TaskCancelledError` instead of returning."""
        if not self._in_user:
            return
        self._in_user = False
        try:
            self._token.pop()
        except IndexError:  # a cancel claimed this stretch of user code: take its exception back
            try:
                while not self._injected:
                    time.sleep(0.0005)  # the I/O thread is between the claim and the injection
                _set_async_exc(self.ident, _Retracted)  # (our own thread: it fires right here)
                _checkpoint()
            except (_Retracted, errors.TaskCancelledError):
                pass  # raised here: nothing is pending any more

    def engine_call(self) -> _EngineCall:
        """`with guard.engine_call():` around an engine call made from the task's code."""
        return _EngineCall(self)

    def block_on(self, waiter) -> None:
        """A get/wait is about to block on `waiter`: a cancel wakes it. Raises if cancelled."""
        self.waiter = waiter
        if self.cancelled:
            self.waiter = None
            raise self.error()

    def unblocked(self) -> None:
        """The get/wait stopped blocking. Raises if it was woken by a cancel."""
        self.waiter = None
        if self.cancelled:
            raise self.error()

    def error(self) -> errors.TaskCancelledError:
        return errors.TaskInterrupted(f"task {self.name} was cancelled")

    # ---- the I/O thread --------------------------------------------------------------------
    def request(self) -> None:
        """Marks a running actor call as asked to stop, without interrupting it (as Ray does:
        the method polls `get_runtime_context().is_canceled()`)."""
        self.requested = True

    def cancel(self) -> None:
        """Marks the task cancelled; wakes its blocked get/wait, or interrupts its own code."""
        self.cancelled = True
        waiter = self.waiter
        if waiter is not None and waiter.event is not None:
            waiter.event.set()
        try:
            self._token.pop()
        except IndexError:
            return  # in engine code: it checks `cancelled` before returning to the task
        _set_async_exc(self.ident, errors.TaskInterrupted)
        self._injected = True


class _EngineCall:
    __slots__ = ("guard",)

    def __init__(self, guard: TaskGuard):
        self.guard = guard

    def __enter__(self) -> None:
        self.guard.leave_user()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.guard.enter_user()
