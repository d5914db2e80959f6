"""Normal tasks on a real embedded cluster (2 CPUs): values, refs, errors, ids, cancel."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from conftest import wait_for
from ownrun import engine
from ownrun.engine import debug
from ownrun.engine.rpc import protocol as P

pytestmark = pytest.mark.usefixtures("cluster")

MIB = 1024 * 1024


@engine.remote
def square(x):
    return x * x


@engine.remote
def add(a, b=0):
    return a + b


@engine.remote
def inc(x):
    return x + 1


@engine.remote
def pair(x):
    return x, x * 10


@engine.remote
def describe_args(top, nested):
    inner = nested[0]
    return {
        "top_type": type(top).__name__,
        "top": top,
        "nested_is_ref": isinstance(inner, engine.ObjectRef),
        "nested_value": engine.get(inner),
    }


@engine.remote
def child(i, j):
    return i * 100 + j


@engine.remote
def parent(i, fanout):
    return sum(engine.get([child.remote(i, j) for j in range(fanout)]))


@engine.remote
def make_array(n_bytes):
    return np.full(n_bytes // 8, 7.0)


@engine.remote
def array_sum(arr):
    return float(arr.sum()), arr.flags.writeable


@engine.remote
def sleep_then(seconds, value=None):
    time.sleep(seconds)
    return value


@engine.remote
def raise_value_error(message):
    raise ValueError(message)


@engine.remote
def runtime_ids():
    ctx = engine.get_runtime_context()
    return ctx.get_task_id(), ctx.get_worker_id()


@engine.remote
def touch_and_sleep(path, seconds):
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(seconds)
    return "finished"


@engine.remote
def touch_and_poll(path, seconds):
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "finished"


# ---- values ---------------------------------------------------------------------------------
def test_results_match_local_computation():
    refs = [square.remote(i) for i in range(50)]
    assert engine.get(refs) == [i * i for i in range(50)]
    assert engine.get(refs[7]) == 49


def test_num_returns_two_gives_two_refs():
    a, b = pair.options(num_returns=2).remote(4)
    assert isinstance(a, engine.ObjectRef) and isinstance(b, engine.ObjectRef)
    assert engine.get([a, b]) == [4, 40]


def test_keyword_arguments_and_refs_as_keywords():
    assert engine.get(add.remote(1, b=2)) == 3
    assert engine.get(add.remote(a=5)) == 5
    ref_a, ref_b = engine.put(10), square.remote(3)
    assert engine.get(add.remote(a=ref_a, b=ref_b)) == 19
    assert engine.get(add.remote(ref_a, b=ref_b)) == 19


def test_top_level_refs_are_resolved_and_nested_refs_arrive_as_refs():
    top, inner = engine.put(41), engine.put("inner value")
    result = engine.get(describe_args.remote(top, [inner]))
    assert result == {"top_type": "int", "top": 41, "nested_is_ref": True,
                      "nested_value": "inner value"}


def test_task_result_ref_as_argument_is_resolved_before_the_task_runs():
    assert engine.get(add.remote(square.remote(4), square.remote(3))) == 25


def test_nested_tasks_do_not_deadlock_on_two_cpus():
    fanout = 20
    refs = [parent.remote(i, fanout) for i in range(20)]
    expected = [sum(i * 100 + j for j in range(fanout)) for i in range(20)]
    assert engine.get(refs, timeout=120) == expected


def test_chain_of_a_thousand_tasks():
    ref = engine.put(0)
    for _ in range(1000):
        ref = inc.remote(ref)
    assert engine.get(ref, timeout=120) == 1000


# ---- numpy / zero-copy --------------------------------------------------------------------
def test_small_numpy_array_round_trips_through_put():
    arr = np.arange(100, dtype=np.int64)
    out = engine.get(engine.put(arr))
    np.testing.assert_array_equal(out, arr)


def test_large_numpy_array_get_is_zero_copy_and_read_only():
    arr = np.arange(50 * MIB // 8, dtype=np.float64)
    ref = engine.put(arr)
    out = engine.get(ref)
    assert out.shape == arr.shape
    assert out[0] == 0 and out[-1] == arr[-1]
    assert not out.flags.writeable
    with pytest.raises(ValueError):
        out[0] = 1.0
    # A task sees the same read-only shared-memory view.
    total, writeable = engine.get(array_sum.remote(ref))
    assert total == float(arr.sum())
    assert writeable is False
    del out


def test_large_array_returned_by_a_task():
    out = engine.get(make_array.remote(8 * MIB))
    assert out.shape == (MIB,)
    assert float(out.sum()) == 7.0 * MIB
    assert not out.flags.writeable


# ---- get / wait -----------------------------------------------------------------------------
def test_get_timeout_raises_within_about_the_timeout():
    ref = sleep_then.remote(30)
    start = time.monotonic()
    with pytest.raises(engine.GetTimeoutError):
        engine.get(ref, timeout=0.5)
    elapsed = time.monotonic() - start
    assert 0.4 <= elapsed < 2.0
    engine.cancel(ref, force=True)
    with pytest.raises(engine.TaskCancelledError):
        engine.get(ref, timeout=10)


def test_get_timeout_error_is_a_timeout_error():
    assert issubclass(engine.GetTimeoutError, TimeoutError)


def test_wait_splits_ready_and_not_ready():
    fast = [square.remote(i) for i in range(3)]
    engine.get(fast)
    slow = [sleep_then.remote(1.5, i) for i in range(2)]
    refs = fast + slow

    ready, not_ready = engine.wait(refs, num_returns=2, timeout=5)
    assert ready == fast[:2]
    assert not_ready == [fast[2], *slow]

    ready, not_ready = engine.wait(refs, num_returns=5, timeout=0.3)
    assert ready == fast
    assert not_ready == slow

    ready, not_ready = engine.wait(refs, num_returns=5, timeout=30)
    assert ready == refs and not_ready == []
    assert engine.get(slow) == [0, 1]


def test_wait_with_zero_timeout_does_not_block():
    ref = sleep_then.remote(1.0)
    start = time.monotonic()
    ready, not_ready = engine.wait([ref], num_returns=1, timeout=0)
    assert time.monotonic() - start < 0.5
    assert ready == [] and not_ready == [ref]
    engine.get(ref)


# ---- errors --------------------------------------------------------------------------------
def test_remote_value_error_is_caught_as_value_error_with_remote_traceback():
    ref = raise_value_error.remote("bad input 42")
    with pytest.raises(ValueError) as info:
        engine.get(ref)
    assert isinstance(info.value, engine.TaskError)
    text = str(info.value)
    assert "raise_value_error" in text
    assert "bad input 42" in text


def test_error_propagates_to_dependent_tasks():
    failed = raise_value_error.remote("upstream")
    with pytest.raises(ValueError, match="upstream"):
        engine.get(inc.remote(failed))


def test_unpicklable_argument_fails_at_remote_naming_the_position():
    with pytest.raises(engine.SerializationError) as info:
        add.remote(1, threading.Lock())
    assert isinstance(info.value, TypeError)
    assert "argument 1" in str(info.value)
    with pytest.raises(engine.SerializationError, match="keyword argument 'b'"):
        add.remote(1, b=threading.Lock())


def test_calling_a_remote_function_directly_raises_type_error():
    with pytest.raises(TypeError, match="remote"):
        square(3)


def test_init_twice_raises_engine_error():
    with pytest.raises(engine.EngineError, match="already"):
        engine.init(num_cpus=1)
    assert engine.is_initialized()
    assert engine.get(square.remote(2)) == 4


# ---- context / head ------------------------------------------------------------------------
def test_runtime_context_in_a_task_has_its_own_task_and_worker_ids():
    driver = engine.get_runtime_context()
    task_id, worker_id = engine.get(runtime_ids.remote())
    assert task_id
    assert worker_id and worker_id != driver.get_worker_id()
    assert driver.get_task_id() is None
    other_task_id, _ = engine.get(runtime_ids.remote())
    assert other_task_id != task_id


# Head traffic that is not caused by tasks: our own stats calls and node membership.
_BACKGROUND = {getattr(P, name) for name in ("HEAD_STATS", "HEARTBEAT", "NODE_CLIENTS", "REGISTER_NODE")
               if hasattr(P, name)}


def _head_requests_not_background() -> int:
    by_type = debug.head_stats()["by_type"]
    return sum(n for kind, n in by_type.items() if int(kind) not in _BACKGROUND)


def test_a_thousand_tasks_cause_no_head_requests():
    before = _head_requests_not_background()
    refs = [square.remote(i) for i in range(1000)]
    assert engine.get(refs, timeout=120) == [i * i for i in range(1000)]
    assert _head_requests_not_background() == before


# ---- cancel -------------------------------------------------------------------------------
def test_force_cancel_of_a_running_task_raises_task_cancelled(tmp_path):
    marker = tmp_path / "started"
    ref = touch_and_sleep.remote(str(marker), 30)
    wait_for(marker.exists, timeout=20, message="the task started")
    start = time.monotonic()
    engine.cancel(ref, force=True)
    with pytest.raises(engine.TaskCancelledError):
        engine.get(ref, timeout=10)
    assert time.monotonic() - start < 5
    assert engine.get(square.remote(5), timeout=30) == 25  # the node recovered a worker


def test_cancel_without_force_interrupts_a_python_loop(tmp_path):
    marker = tmp_path / "started"
    ref = touch_and_poll.remote(str(marker), 30)
    wait_for(marker.exists, timeout=20, message="the task started")
    start = time.monotonic()
    engine.cancel(ref)
    with pytest.raises(engine.TaskCancelledError):
        engine.get(ref, timeout=10)
    assert time.monotonic() - start < 5
    assert engine.get(square.remote(6), timeout=30) == 36  # the same pool still works


def test_cancel_of_a_task_waiting_for_its_argument(tmp_path):
    marker = tmp_path / "started"
    blocker = touch_and_sleep.remote(str(marker), 30)
    waiting = inc.remote(blocker)
    engine.cancel(waiting)
    with pytest.raises(engine.TaskCancelledError):
        engine.get(waiting, timeout=5)
    wait_for(marker.exists, timeout=20, message="the blocker started")
    engine.cancel(blocker, force=True)
    with pytest.raises(engine.TaskCancelledError):
        engine.get(blocker, timeout=10)


def test_cancel_of_a_finished_task_keeps_its_value():
    ref = square.remote(9)
    assert engine.get(ref) == 81
    engine.cancel(ref, force=True)
    assert engine.get(ref) == 81


def test_force_cancel_of_a_task_queued_behind_another_spares_the_running_one(tmp_path):
    marker = tmp_path / "started"
    running = touch_and_sleep.options(max_retries=0).remote(str(marker), 2)
    queued = sleep_then.remote(30)
    wait_for(marker.exists, timeout=20, message="the first task started")
    engine.cancel(queued, force=True)
    with pytest.raises(engine.TaskCancelledError):
        engine.get(queued, timeout=10)
    assert engine.get(running, timeout=10) == "finished"


# ---- parallelism ----------------------------------------------------------------------------
def test_independent_tasks_run_in_parallel_on_two_cpus():
    engine.get([sleep_then.remote(0) for _ in range(4)])  # workers warm
    start = time.monotonic()
    assert engine.get([sleep_then.remote(1.0, i) for i in range(2)], timeout=30) == [0, 1]
    assert time.monotonic() - start < 1.8


def test_failure_of_a_multi_return_task_fails_every_return():
    a, b = raise_value_error.options(num_returns=2).remote("both")
    for ref in (a, b):
        with pytest.raises(ValueError, match="both"):
            engine.get(ref)
