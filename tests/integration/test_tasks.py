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
from remote_helpers import wait_for_file

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
def count_args(*values):
    return len(values), sum(values)


@engine.remote
def echo_args(*args, **kwargs):
    return args, kwargs


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
def meet(tmp, me, other, seconds=60.0):
    """A two-party barrier in files: announces `me`, then waits (up to `seconds`) for `other`.
    True iff both ran at the same time."""
    with open(os.path.join(tmp, me), "w"):
        pass
    deadline = time.monotonic() + seconds
    while not os.path.exists(os.path.join(tmp, other)):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


@engine.remote
def touch_sleep_mark(path, done, seconds):
    """Announces itself at `path`, sleeps, then leaves `done`: the side effect of completing."""
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(seconds)
    with open(done, "w"):
        pass
    return "finished"


@engine.remote
def touch_poll_mark(path, done, seconds):
    """Like `touch_sleep_mark` but busy in Python code (so a non-forced cancel can interrupt it)."""
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    with open(done, "w"):
        pass
    return "finished"


@engine.remote
def touch_then_wait_for_file(path, go, seconds=60.0):
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    deadline = time.monotonic() + seconds
    while not os.path.exists(go):
        if time.monotonic() >= deadline:
            return "timeout"
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


def test_a_task_with_thousands_of_ref_arguments_gets_every_value():
    refs = [square.remote(i) for i in range(3000)]  # small pickles: packed into one frame
    assert engine.get(count_args.remote(*refs), timeout=60) == (3000, sum(i * i for i in range(3000)))


def test_a_task_with_thousands_of_array_arguments_gets_every_value():
    refs = [engine.put(np.full(1, i)) for i in range(1500)]  # two frames each: > IOV_MAX buffers
    count, total = engine.get(count_args.remote(*refs), timeout=60)
    assert count == 1500 and total.tolist() == [sum(range(1500))]


def test_a_call_with_only_ref_arguments_gets_them_in_order():
    refs = [square.remote(i) for i in range(5)]
    assert engine.get(echo_args.remote(*refs), timeout=60) == ((0, 1, 4, 9, 16), {})
    assert engine.get(echo_args.remote(refs[1]), timeout=60) == ((1,), {})


def test_packed_and_unpacked_ref_arguments_arrive_in_their_places():
    inner = engine.put("inside")
    values = [1, b"x" * (P.PACKED_ARG_MAX + 1), "two", np.arange(3), [inner], 3.5]
    refs = [engine.put(v) for v in values]
    got = engine.get(echo_args.remote(*refs, key=refs[2], other=refs[1]), timeout=60)
    args, kwargs = got
    assert args[0] == 1 and args[1] == values[1] and args[2] == "two" and args[5] == 3.5
    assert args[3].tolist() == [0, 1, 2] and engine.get(args[4][0]) == "inside"
    assert kwargs == {"key": "two", "other": values[1]}


def test_a_task_with_more_ref_arguments_than_a_message_carries_fails_saying_so():
    refs = [engine.put(np.full(1, i)) for i in range(P.MAX_MESSAGE_FRAMES // 2 + 10)]  # 2 frames each
    with pytest.raises(ValueError, match="by-reference arguments make a message of"):
        engine.get(count_args.remote(*refs), timeout=60)  # an explained error, not a hang
    count, total = engine.get(count_args.remote(*refs[:5]), timeout=60)
    assert count == 5 and total.tolist() == [10]


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
def test_get_timeout_raises_while_the_task_still_runs(tmp_path):
    # The task cannot finish before the test creates `go`: a get that waited for the result
    # instead of honouring its timeout would hang here (the module's pytest timeout fails it).
    go = tmp_path / "go"
    ref = wait_for_file.remote(str(go), 300)
    start = time.monotonic()
    with pytest.raises(engine.GetTimeoutError):
        engine.get(ref, timeout=0.5)
    assert time.monotonic() - start >= 0.4  # it waited for the timeout (load only lengthens this)
    assert engine.wait([ref], num_returns=1, timeout=0) == ([], [ref])  # still running
    go.touch()
    assert engine.get(ref, timeout=60) == "go"


def test_get_timeout_error_is_a_timeout_error():
    assert issubclass(engine.GetTimeoutError, TimeoutError)


def test_wait_splits_ready_and_not_ready(tmp_path):
    fast = [square.remote(i) for i in range(3)]
    engine.get(fast)
    go = tmp_path / "go"
    slow = [wait_for_file.remote(str(go), 300) for _ in range(2)]  # not ready until `go` exists
    refs = fast + slow

    ready, not_ready = engine.wait(refs, num_returns=2, timeout=30)
    assert ready == fast[:2]
    assert not_ready == [fast[2], *slow]

    ready, not_ready = engine.wait(refs, num_returns=5, timeout=0.3)
    assert ready == fast
    assert not_ready == slow

    go.touch()
    ready, not_ready = engine.wait(refs, num_returns=5, timeout=60)
    assert ready == refs and not_ready == []
    assert engine.get(slow) == ["go", "go"]


def test_wait_with_zero_timeout_does_not_block(tmp_path):
    # The task cannot finish before `go` exists (or its 120 s deadline passes): a zero-timeout
    # wait that blocked until it finished would report it ready.
    go = tmp_path / "go"
    ref = wait_for_file.remote(str(go), 120)
    ready, not_ready = engine.wait([ref], num_returns=1, timeout=0)
    assert ready == [] and not_ready == [ref]
    go.touch()
    assert engine.get(ref, timeout=60) == "go"


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
    # The task would run 300 s: TaskCancelledError within the get's (generous) deadline shows the
    # cancel interrupted it rather than waiting for it; `done` shows it never completed.
    marker, done = tmp_path / "started", tmp_path / "done"
    ref = touch_sleep_mark.remote(str(marker), str(done), 300)
    wait_for(marker.exists, timeout=60, message="the task started")
    engine.cancel(ref, force=True)
    with pytest.raises(engine.TaskCancelledError):
        engine.get(ref, timeout=60)
    assert not done.exists()
    assert engine.get(square.remote(5), timeout=60) == 25  # the node recovered a worker


def test_cancel_without_force_interrupts_a_python_loop(tmp_path):
    marker, done = tmp_path / "started", tmp_path / "done"
    ref = touch_poll_mark.remote(str(marker), str(done), 300)
    wait_for(marker.exists, timeout=60, message="the task started")
    engine.cancel(ref)
    with pytest.raises(engine.TaskCancelledError):
        engine.get(ref, timeout=60)
    assert not done.exists()
    assert engine.get(square.remote(6), timeout=60) == 36  # the same pool still works


def test_cancel_of_a_task_waiting_for_its_argument(tmp_path):
    marker = tmp_path / "started"
    blocker = touch_and_sleep.remote(str(marker), 300)
    waiting = inc.remote(blocker)
    engine.cancel(waiting)
    with pytest.raises(engine.TaskCancelledError):
        engine.get(waiting, timeout=60)
    wait_for(marker.exists, timeout=60, message="the blocker started")
    engine.cancel(blocker, force=True)
    with pytest.raises(engine.TaskCancelledError):
        engine.get(blocker, timeout=60)


def test_cancel_of_a_finished_task_keeps_its_value():
    ref = square.remote(9)
    assert engine.get(ref) == 81
    engine.cancel(ref, force=True)
    assert engine.get(ref) == 81


def test_force_cancel_of_a_task_queued_behind_another_spares_the_running_one(tmp_path):
    # The first task runs until the test creates `go` after the cancel: it is surely still
    # running when the other is cancelled, however slow the machine.
    marker, go = tmp_path / "started", tmp_path / "go"
    running = touch_then_wait_for_file.options(max_retries=0).remote(str(marker), str(go), 300)
    queued = sleep_then.remote(300)
    wait_for(marker.exists, timeout=60, message="the first task started")
    engine.cancel(queued, force=True)
    with pytest.raises(engine.TaskCancelledError):
        engine.get(queued, timeout=60)
    go.touch()
    assert engine.get(running, timeout=60) == "finished"


# ---- parallelism ----------------------------------------------------------------------------
@engine.remote(num_cpus=2)
def running_alongside(refs, tmp, seconds):
    """Gets a borrowed object that is ready at its owner, then (the first such task only)
    watches up to `seconds` for another task holding the node's 2 CPUs to start. Returns how
    many such tasks ran at once."""
    mark = os.path.join(tmp, f"running-{os.getpid()}-{time.monotonic_ns()}")
    open(mark, "w").close()
    engine.get(refs[0])
    try:
        first = os.open(os.path.join(tmp, "first"), os.O_CREAT | os.O_EXCL)
        os.close(first)
        deadline = time.monotonic() + seconds
    except FileExistsError:
        deadline = 0.0
    running = lambda: sum(1 for name in os.listdir(tmp) if name.startswith("running-"))  # noqa: E731
    while running() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    count = running()
    os.remove(mark)
    return count


def test_get_of_an_object_ready_at_its_owner_keeps_the_tasks_cpus(tmp_path):
    # Issue 12 item 12: only a get that has to block gives the task's CPUs back. Each task needs
    # both CPUs of the node, so no two may ever run at once.
    ready = engine.put("ready")
    refs = [running_alongside.remote([ready], str(tmp_path), 5.0) for _ in range(3)]
    assert engine.get(refs, timeout=120) == [1, 1, 1]


def test_independent_tasks_run_in_parallel_on_two_cpus(tmp_path):
    # Each task waits (up to 60 s) for the other to start: serialized, the first would give up
    # and return False.
    refs = [meet.remote(str(tmp_path), "a", "b"), meet.remote(str(tmp_path), "b", "a")]
    assert engine.get(refs, timeout=120) == [True, True]


def test_failure_of_a_multi_return_task_fails_every_return():
    a, b = raise_value_error.options(num_returns=2).remote("both")
    for ref in (a, b):
        with pytest.raises(ValueError, match="both"):
            engine.get(ref)

