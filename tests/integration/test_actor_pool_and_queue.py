"""`engine.util.ActorPool` and `engine.util.queue.Queue` with Ray's names and semantics (issue 12)."""

from __future__ import annotations

import time

import pytest
from ownrun import engine
from ownrun.engine.util import ActorPool
from ownrun.engine.util.queue import Empty, Full, Queue


@engine.remote
class Doubler:
    def double(self, x):
        return 2 * x

    def slow_double(self, x):
        time.sleep(x / 20)
        return 2 * x

    def fail_on(self, x):
        if x == 3:
            raise ZeroDivisionError("three")
        return x


# ---- ActorPool ----------------------------------------------------------------------------------------
def test_actor_pool_map_gives_results_in_the_order_of_the_values(cluster):
    pool = ActorPool([Doubler.remote(), Doubler.remote()])
    values = [5, 1, 4, 2, 3]
    assert list(pool.map(lambda a, v: a.slow_double.remote(v), values)) == [10, 2, 8, 4, 6]
    assert not pool.has_next() and pool.has_free()


def test_actor_pool_map_unordered_gives_every_result(cluster):
    pool = ActorPool([Doubler.remote(), Doubler.remote()])
    results = list(pool.map_unordered(lambda a, v: a.slow_double.remote(v), [4, 0, 3, 1]))
    assert sorted(results) == [0, 2, 6, 8]


def test_actor_pool_queues_submissions_while_every_actor_is_busy(cluster):
    actor = Doubler.remote()
    pool = ActorPool([actor])
    for value in range(4):
        pool.submit(lambda a, v: a.double.remote(v), value)
    assert not pool.has_free() and pool.pop_idle() is None
    assert [pool.get_next(timeout=60) for _ in range(4)] == [0, 2, 4, 6]
    with pytest.raises(StopIteration):
        pool.get_next()
    assert pool.pop_idle() == actor and not pool.has_free()
    pool.push(actor)
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(actor)


def test_actor_pool_raises_a_calls_error_and_keeps_the_actor(cluster):
    pool = ActorPool([Doubler.remote()])
    pool.submit(lambda a, v: a.fail_on.remote(v), 3)
    pool.submit(lambda a, v: a.fail_on.remote(v), 4)
    with pytest.raises(ZeroDivisionError, match="three"):
        pool.get_next()
    assert pool.get_next() == 4


def test_actor_pool_get_next_times_out_and_keeps_the_result_unless_told_to_ignore_it(cluster):
    pool = ActorPool([Doubler.remote()])
    pool.submit(lambda a, v: a.slow_double.remote(v), 20)  # one second
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=0)
    assert pool.get_next(timeout=60) == 40
    pool.submit(lambda a, v: a.slow_double.remote(v), 20)
    with pytest.raises(TimeoutError, match="ignored"):
        pool.get_next(timeout=0, ignore_if_timedout=True)
    assert not pool.has_next() and pool.has_free()


# ---- Queue --------------------------------------------------------------------------------------------
def test_queue_is_first_in_first_out_with_sizes(cluster):
    q = Queue(maxsize=3)
    assert q.empty() and len(q) == 0
    for item in ("a", "b", "c"):
        q.put(item)
    assert q.full() and q.qsize() == 3
    assert [q.get(), q.get_nowait(), q.get(timeout=1)] == ["a", "b", "c"]
    assert q.empty()
    q.shutdown()


def test_queue_raises_full_and_empty_instead_of_waiting_forever(cluster):
    q = Queue(maxsize=1)
    q.put_nowait(1)
    with pytest.raises(Full):
        q.put_nowait(2)
    with pytest.raises(Full):
        q.put(2, timeout=0.05)
    with pytest.raises(Full, match="Cannot add 2 items"):
        q.put_nowait_batch([2, 3])
    assert q.get() == 1
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(Empty):
        q.get(timeout=0.05)
    with pytest.raises(Empty, match="Cannot get 1 items"):
        q.get_nowait_batch(1)
    with pytest.raises(ValueError, match="timeout"):
        q.get(timeout=-1)
    q.shutdown()


@engine.remote
def produce(q, items):
    for item in items:
        q.put(item)
    return len(items)


def test_queue_passed_to_a_task_is_the_same_queue_and_get_waits_for_its_items(cluster):
    q = Queue()
    consumer = q.get_async()  # waits in the actor until the task puts something
    done = produce.remote(q, list(range(5)))
    assert engine.get(consumer, timeout=60) == 0
    assert engine.get(done, timeout=60) == 5
    assert q.get_nowait_batch(4) == [1, 2, 3, 4]
    q.put_nowait_batch([7, 8])
    assert [q.get(), q.get()] == [7, 8]
    actor = q.actor
    q.shutdown()
    with pytest.raises(engine.ActorDiedError):
        engine.get(actor.qsize.remote(), timeout=60)
