"""TaskGuard (worker/cancellation.py): a cancel interrupts only the task's own code or its blocked
get/wait — never engine code, never what runs after the task."""

from __future__ import annotations

import threading
import time

import pytest
from ownrun.engine import errors
from ownrun.engine.worker.cancellation import TaskGuard
from ownrun.engine.worker.objects import Waiter


def _run_in_thread(body):
    """Runs `body(guard)` in a new thread with a fresh guard; returns (guard, thread, outcome)."""
    outcome: list = []
    ready = threading.Event()
    holder: list = []

    def run():
        guard = TaskGuard(b"t", "task")
        holder.append(guard)
        guard.start()
        ready.set()
        try:
            outcome.append(("ok", body(guard)))
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(("raised", exc))
        finally:
            guard.finish()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    return holder[0], thread, outcome


def test_cancel_wakes_a_blocked_get_which_raises_task_cancelled():
    waiter = Waiter(1, None, True)
    blocking = threading.Event()

    def body(guard):
        guard.block_on(waiter)
        blocking.set()
        waiter.event.wait(30)
        guard.unblocked()

    guard, thread, outcome = _run_in_thread(body)
    assert blocking.wait(10)
    guard.cancel()
    thread.join(10)
    assert outcome and outcome[0][0] == "raised" and isinstance(outcome[0][1], errors.TaskCancelledError)


def test_cancel_during_engine_code_injects_nothing_and_raises_on_return_to_user_code():
    in_engine, cancelled = threading.Event(), threading.Event()
    engine_finished: list = []

    def body(guard):
        guard.enter_user()
        with guard.engine_call():
            in_engine.set()
            cancelled.wait(10)
            for _ in range(100_000):  # plenty of bytecodes for a pending async exception to fire
                pass
            engine_finished.append(True)
        return "not reached"

    guard, thread, outcome = _run_in_thread(body)
    assert in_engine.wait(10)
    guard.cancel()
    cancelled.set()
    thread.join(10)
    assert engine_finished == [True]
    assert outcome[0][0] == "raised" and isinstance(outcome[0][1], errors.TaskCancelledError)


def test_cancel_interrupts_user_code_that_never_calls_the_engine():
    looping = threading.Event()

    def body(guard):
        guard.enter_user()
        try:
            looping.set()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                pass
        finally:
            guard.leave_user()
        return "timeout"

    guard, thread, outcome = _run_in_thread(body)
    assert looping.wait(10)
    guard.cancel()
    thread.join(30)
    assert outcome[0][0] == "raised" and isinstance(outcome[0][1], errors.TaskCancelledError)


@pytest.mark.parametrize("seed", range(5))
def test_a_cancel_racing_the_end_of_user_code_never_fires_after_it(seed):
    # The thread leaves user code after a varying amount of work while the cancel arrives; once
    # `leave_user` returned, no exception may fire (the "engine" loop after it must complete).
    for round_ in range(40):
        spin = (seed * 40 + round_) * 50
        go = threading.Event()

        def body(guard, spin=spin, go=go):
            guard.enter_user()
            try:
                go.set()
                for _ in range(spin):
                    pass
            except errors.TaskCancelledError:
                pass  # the task's own code was interrupted: fine
            finally:
                try:
                    guard.leave_user()
                except errors.TaskCancelledError:
                    pass  # raised in leave_user itself: still before the engine code below
            total = 0
            for i in range(20_000):
                total += i
            return total

        guard, thread, outcome = _run_in_thread(body)
        go.wait(10)
        guard.cancel()
        thread.join(10)
        assert outcome == [("ok", sum(range(20_000)))], f"round {round_}: {outcome}"
