"""`engine.cancel` as in Ray (issue 12 items 4 and 5) on a real embedded cluster (2 CPUs):
a non-forced cancel interrupts a task blocked in `get`/`wait`, never lands anywhere but in the
cancelled task, is forwarded to the owner when a borrower cancels, and by default cancels the
tasks the cancelled task submitted."""

from __future__ import annotations

import os
import time

import pytest
from conftest import wait_for
from ownrun import engine
from remote_helpers import wait_for_file

pytestmark = pytest.mark.usefixtures("cluster")


@engine.remote
def get_nested(refs, started):
    open(started, "w").close()
    return engine.get(refs[0])


@engine.remote
def wait_nested(refs, started):
    open(started, "w").close()
    ready, _ = engine.wait(refs)
    return len(ready)


@engine.remote
def plus_one(x):
    return x + 1


@engine.remote
def square(x):
    return x * x


@engine.remote
def cancel_ref(refs):
    engine.cancel(refs[0])
    return "asked"


@engine.remote
def child_until_cancelled(go, started, cancelled):
    """Runs until `go` exists, then leaves `<started>.done`; leaves `cancelled` if a cancel
    interrupts it."""
    open(started, "w").close()
    try:
        while not os.path.exists(go):
            time.sleep(0.01)
    except engine.TaskCancelledError:
        open(cancelled, "w").close()
        raise
    open(f"{started}.done", "w").close()
    return "go"


@engine.remote
def parent_of_child(go, started, cancelled):
    return engine.get(child_until_cancelled.remote(go, started, cancelled))


@engine.remote
def busy(n):
    total = 0
    for i in range(n):
        total += i
    return total


# ---- item 4: a non-forced cancel interrupts a blocked get/wait ------------------------------
@pytest.mark.parametrize("blocked_in", [get_nested, wait_nested], ids=["get", "wait"])
def test_cancel_interrupts_a_task_blocked_in_get_or_wait_and_fails_its_dependents(tmp_path, blocked_in):
    go, started = tmp_path / "go", tmp_path / "started"
    blocker = wait_for_file.remote(str(go))
    task = blocked_in.remote([blocker], str(started))
    dependent = plus_one.remote(task)
    wait_for(started.exists, timeout=60, message="the task started")
    engine.cancel(task)
    try:
        for ref in (task, dependent):
            with pytest.raises(engine.TaskCancelledError):
                engine.get(ref, timeout=60)
    finally:
        go.touch()
    assert engine.get(blocker, timeout=60) == "go"
    assert engine.get(square.remote(7), timeout=60) == 49  # the worker serves the next task


def test_cancels_racing_the_end_of_tasks_never_hit_the_next_task_or_the_engine():
    # Cancels land at every point of short tasks' lives (before, during, after the user code):
    # each task is either cancelled or done, and every later task on those workers is fine.
    refs = [busy.remote(20_000 + 1000 * i) for i in range(40)]
    for i, ref in enumerate(refs):
        if i % 2:
            time.sleep(0.001 * (i % 7))
        engine.cancel(ref)
    for i, ref in enumerate(refs):
        try:
            assert engine.get(ref, timeout=120) == sum(range(20_000 + 1000 * i))
        except engine.TaskCancelledError:
            pass
    assert engine.get([square.remote(i) for i in range(20)], timeout=120) == [i * i for i in range(20)]


# ---- item 5: cancel by a borrower, recursive cancel ----------------------------------------
def test_cancel_by_a_borrower_is_forwarded_to_the_owner(tmp_path):
    go = tmp_path / "go"
    running = wait_for_file.remote(str(go))
    try:
        assert engine.get(cancel_ref.remote([running]), timeout=60) == "asked"
        with pytest.raises(engine.TaskCancelledError):
            engine.get(running, timeout=60)
    finally:
        go.touch()


def test_recursive_cancel_cancels_the_tasks_the_cancelled_task_submitted(tmp_path):
    go, started, cancelled = tmp_path / "go", tmp_path / "started", tmp_path / "cancelled"
    parent = parent_of_child.remote(str(go), str(started), str(cancelled))
    wait_for(started.exists, timeout=60, message="the child started")
    engine.cancel(parent)  # recursive by default, as in Ray
    try:
        with pytest.raises(engine.TaskCancelledError):
            engine.get(parent, timeout=60)
        wait_for(cancelled.exists, timeout=60, message="the child was interrupted")
    finally:
        go.touch()


def test_non_recursive_cancel_leaves_the_children_running(tmp_path):
    go, started, cancelled = tmp_path / "go", tmp_path / "started", tmp_path / "cancelled"
    parent = parent_of_child.remote(str(go), str(started), str(cancelled))
    wait_for(started.exists, timeout=60, message="the child started")
    engine.cancel(parent, recursive=False)
    with pytest.raises(engine.TaskCancelledError):
        engine.get(parent, timeout=60)
    # The child still runs: it finishes normally once told to, never having seen a cancel.
    go.touch()
    wait_for((tmp_path / "started.done").exists, timeout=60, message="the child finished")
    assert not cancelled.exists()
