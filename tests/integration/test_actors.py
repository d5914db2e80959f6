"""Actors on a real embedded cluster: ordering, handles, names, death, concurrency."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import psutil
import pytest
from conftest import process_gone, wait_for
from ownrun import engine

pytestmark = pytest.mark.usefixtures("cluster")


@engine.remote
class Recorder:
    def __init__(self, start=None):
        self.items = list(start or [])

    def append(self, item):
        self.items.append(item)
        return len(self.items)

    def read(self):
        return list(self.items)

    def pid(self):
        return os.getpid()

    def sleep(self, seconds):
        time.sleep(seconds)
        return "slept"


@engine.remote
class Failing:
    def __init__(self):
        raise RuntimeError("constructor exploded")

    def ping(self):
        return "pong"


@engine.remote
class Sleeper:
    def __init__(self):
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def nap(self, seconds):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(seconds)
        with self.lock:
            self.active -= 1
        return threading.get_ident()

    def meet(self, n, seconds=60.0):
        """Waits (up to `seconds`) until `n` calls are in the actor at once: (met, thread id).
        Calls run one at a time would never meet: the first gives up and reports False."""
        deadline = time.monotonic() + seconds
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            while self.peak < n and time.monotonic() < deadline:
                self.lock.release()
                time.sleep(0.01)
                self.lock.acquire()
            met = self.peak >= n
            self.active -= 1
        return met, threading.get_ident()

    def peak_concurrency(self):
        return self.peak


@engine.remote
class AsyncSleeper:
    def __init__(self):
        self.active = 0
        self.peak = 0

    async def nap(self, seconds):
        self.active += 1
        self.peak = max(self.peak, self.active)
        await asyncio.sleep(seconds)
        self.active -= 1
        return seconds

    async def meet(self, n, seconds=60.0):
        """Like `Sleeper.meet`, awaiting: True iff `n` calls were in the actor at once."""
        deadline = time.monotonic() + seconds
        self.active += 1
        self.peak = max(self.peak, self.active)
        while self.peak < n and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.active -= 1
        return self.peak >= n

    async def peak_concurrency(self):
        return self.peak

    def ready(self):
        return True


@engine.remote
def append_via_handle(recorder, item):
    return engine.get(recorder.append.remote(item))


@engine.remote
class Forwarder:
    def forward(self, recorder, item):
        return engine.get(recorder.append.remote(item))


@pytest.fixture
def actors():
    """Collects actors the test creates and kills them afterwards."""
    made = []
    yield made
    for handle in made:
        engine.kill(handle)


def test_calls_from_one_caller_run_in_submission_order(actors):
    rec = Recorder.remote()
    actors.append(rec)
    refs = [rec.append.remote(i) for i in range(1, 201)]
    assert engine.get(refs) == list(range(1, 201))
    assert engine.get(rec.read.remote()) == list(range(1, 201))


def test_constructor_arguments_reach_the_actor(actors):
    rec = Recorder.remote(["a", "b"])
    actors.append(rec)
    assert engine.get(rec.read.remote()) == ["a", "b"]


def test_handle_passed_to_tasks_reaches_the_same_actor(actors):
    rec = Recorder.remote()
    actors.append(rec)
    results = engine.get([append_via_handle.remote(rec, i) for i in range(5)])
    assert sorted(results) == [1, 2, 3, 4, 5]
    assert sorted(engine.get(rec.read.remote())) == [0, 1, 2, 3, 4]


def test_handle_passed_to_another_actor_reaches_the_same_actor(actors):
    rec = Recorder.remote()
    fwd = Forwarder.remote()
    actors.extend([rec, fwd])
    assert engine.get(fwd.forward.remote(rec, "via forwarder")) == 1
    assert engine.get(rec.append.remote("direct")) == 2
    assert engine.get(rec.read.remote()) == ["via forwarder", "direct"]


def test_named_actor_is_found_by_name(actors):
    rec = Recorder.options(name="recorder-named").remote()
    actors.append(rec)
    engine.get(rec.append.remote("x"))
    found = engine.get_actor("recorder-named")
    assert engine.get(found.append.remote("y")) == 2
    assert engine.get(rec.read.remote()) == ["x", "y"]


def test_duplicate_actor_name_raises_value_error(actors):
    first = Recorder.options(name="recorder-dup").remote()
    actors.append(first)
    engine.get(first.read.remote())
    with pytest.raises(ValueError, match="recorder-dup"):
        Recorder.options(name="recorder-dup").remote()
    assert engine.get(first.append.remote(1)) == 1  # the first one is unaffected


def test_get_actor_of_an_unknown_name_raises_value_error():
    with pytest.raises(ValueError, match="no-such-actor"):
        engine.get_actor("no-such-actor")


def test_name_is_free_again_after_the_named_actor_is_killed(actors):
    first = Recorder.options(name="recorder-reuse").remote()
    running = first.sleep.remote(30)
    engine.kill(first)
    with pytest.raises(engine.ActorDiedError):
        engine.get(running, timeout=10)
    second = Recorder.options(name="recorder-reuse").remote()
    actors.append(second)
    assert engine.get(second.append.remote("again")) == 1


def test_twenty_zero_cpu_actors_run_on_two_cpus(actors):
    recs = [Recorder.options(num_cpus=0).remote([i]) for i in range(20)]
    actors.extend(recs)
    assert engine.get([r.read.remote() for r in recs], timeout=60) == [[i] for i in range(20)]


def test_kill_fails_the_running_call_and_later_calls_with_the_reason():
    rec = Recorder.remote()
    assert engine.get(rec.append.remote(1)) == 1
    running = rec.sleep.remote(30)
    engine.kill(rec)
    with pytest.raises(engine.ActorDiedError, match="kill"):
        engine.get(running, timeout=10)
    with pytest.raises(engine.ActorDiedError, match="kill"):
        engine.get(rec.append.remote(2), timeout=10)
    with pytest.raises(engine.ActorDiedError, match="kill"):
        engine.get(rec.read.remote(), timeout=10)


def test_call_submitted_right_after_kill_raises_actor_died():
    for _ in range(20):
        rec = Recorder.remote()
        engine.get(rec.read.remote())
        engine.kill(rec)
        with pytest.raises(engine.ActorDiedError, match="kill"):
            engine.get(rec.append.remote("after kill"), timeout=10)


def test_constructor_error_makes_method_calls_raise_actor_died():
    actor = Failing.remote()
    with pytest.raises(engine.ActorDiedError) as info:
        engine.get(actor.ping.remote(), timeout=10)
    assert "constructor exploded" in str(info.value)
    with pytest.raises(engine.ActorDiedError):
        engine.get(actor.ping.remote(), timeout=10)
    engine.kill(actor)


def test_threaded_actor_runs_calls_concurrently(actors):
    sleeper = Sleeper.options(max_concurrency=4).remote()
    actors.append(sleeper)
    engine.get(sleeper.peak_concurrency.remote())  # created and warm
    results = engine.get([sleeper.meet.remote(4) for _ in range(4)], timeout=120)
    assert [met for met, _ in results] == [True] * 4  # all four were in the actor at once
    assert len({thread for _, thread in results}) == 4
    assert engine.get(sleeper.peak_concurrency.remote()) == 4


def test_threaded_actor_runs_calls_submitted_right_after_creation_concurrently(actors):
    sleeper = Sleeper.options(max_concurrency=4).remote()
    actors.append(sleeper)
    results = engine.get([sleeper.meet.remote(4) for _ in range(4)], timeout=120)
    assert [met for met, _ in results] == [True] * 4
    assert engine.get(sleeper.peak_concurrency.remote()) == 4


def test_default_actor_runs_one_call_at_a_time(actors):
    sleeper = Sleeper.remote()
    actors.append(sleeper)
    engine.get([sleeper.nap.remote(0.05) for _ in range(4)], timeout=30)
    assert engine.get(sleeper.peak_concurrency.remote()) == 1


def test_async_actor_interleaves_awaiting_calls(actors):
    sleeper = AsyncSleeper.remote()
    actors.append(sleeper)
    assert engine.get(sleeper.ready.remote())
    # Each call awaits until all ten are in the actor: run one after another, none would meet.
    assert engine.get([sleeper.meet.remote(10) for _ in range(10)], timeout=120) == [True] * 10
    assert engine.get(sleeper.peak_concurrency.remote()) == 10


def test_sigkill_of_the_actor_process_fails_pending_and_new_calls():
    rec = Recorder.remote()
    pid = engine.get(rec.pid.remote())
    assert pid != os.getpid()
    pending = rec.sleep.remote(30)
    queued = rec.append.remote("never")
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(engine.ActorDiedError):
        engine.get(pending, timeout=10)
    with pytest.raises(engine.ActorDiedError):
        engine.get(queued, timeout=10)
    with pytest.raises(engine.ActorDiedError, match="SIGKILL"):
        engine.get(rec.read.remote(), timeout=10)


def test_async_actor_method_called_right_after_creation_returns_its_value(actors):
    sleeper = AsyncSleeper.remote()
    actors.append(sleeper)
    assert engine.get(sleeper.nap.remote(0.01), timeout=10) == 0.01


@engine.remote
class Introspector:
    def ids(self):
        ctx = engine.get_runtime_context()
        return ctx.get_actor_id(), ctx.get_task_id(), os.getpid()


def test_runtime_context_in_an_actor_names_the_actor(actors):
    actor = Introspector.remote()
    actors.append(actor)
    actor_id, task_id, pid = engine.get(actor.ids.remote())
    again_actor_id, again_task_id, again_pid = engine.get(actor.ids.remote())
    assert actor_id and actor_id == again_actor_id
    assert task_id and task_id != again_task_id
    assert pid == again_pid != os.getpid()


def test_get_actor_of_a_killed_named_actor_raises_value_error():
    rec = Recorder.options(name="recorder-gone").remote()
    engine.get(rec.read.remote())
    engine.kill(rec)
    with pytest.raises(ValueError, match="recorder-gone"):
        engine.get_actor("recorder-gone")


def test_actor_process_exits_once_its_last_handle_is_dropped():
    rec = Recorder.remote()
    proc = psutil.Process(engine.get(rec.pid.remote()))
    del rec
    wait_for(lambda: process_gone(proc),
             message="the unreferenced actor's process exited")


# ---- handle scope and ordering (issue 7, issue 12 item 3) -------------------------------------
def test_actor_outlives_its_last_handle_until_pending_calls_finish():
    assert engine.get(Recorder.remote().append.remote("only"), timeout=30) == 1

    rec = Recorder.remote()
    refs = [rec.append.remote(i) for i in range(5)]
    pid_ref = rec.pid.remote()
    del rec  # the last handle: the actor must still run the five calls, then exit
    assert engine.get(refs, timeout=30) == [1, 2, 3, 4, 5]
    pid = engine.get(pid_ref, timeout=30)  # the actor may exit at once: never inspect it eagerly
    wait_for(lambda: process_gone(pid), message="the actor exited once its calls were done")


@engine.remote
def value_once_file_exists(value, path):
    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return value


def test_calls_from_one_caller_keep_their_order_when_an_earlier_argument_is_pending(actors, tmp_path):
    rec = Recorder.remote()
    actors.append(rec)
    gate = tmp_path / "gate"
    first = rec.append.remote(value_once_file_exists.remote("first", str(gate)))
    second = rec.append.remote("second")
    gate.write_text("open")
    assert engine.get([first, second], timeout=30) == [1, 2]
    assert engine.get(rec.read.remote(), timeout=30) == ["first", "second"]


@engine.remote(num_cpus=0)
def call_and_hand_back(recorder, seconds):
    return [recorder.sleep.remote(seconds)]  # the call's ref, owned by this task's worker


def test_actor_outlives_its_last_handle_until_a_borrowers_pending_call_finishes():
    rec = Recorder.remote()
    pid = engine.get(rec.pid.remote(), timeout=30)
    [pending] = engine.get(call_and_hand_back.remote(rec, 1.0), timeout=30)
    del rec  # the borrower's handle is gone too, but its call is still running
    assert engine.get(pending, timeout=30) == "slept"
    wait_for(lambda: process_gone(pid), message="the actor exited once the borrower's call was done")


@engine.remote
def fails_with_bad_argument():
    raise ValueError("bad argument")


def test_calls_to_an_actor_whose_constructor_argument_failed_raise_actor_died():
    rec = Recorder.remote(fails_with_bad_argument.remote())
    with pytest.raises(engine.ActorDiedError, match="ValueError: bad argument"):
        engine.get(rec.read.remote(), timeout=30)
