"""A thread blocked in get reads the inbox itself (CoreWorker.wait_reading), one thread at a
time; an idle executor does too. Whoever reads a reply hands it to the thread that waits for
it: no reply is lost or stalls, whichever thread happens to read it."""

from __future__ import annotations

import threading

import pytest
from ownrun import engine
from ownrun.engine import object_ref


@pytest.fixture(scope="module", autouse=True)
def cluster():
    engine.init(num_cpus=2)
    yield
    engine.shutdown()


@engine.remote
def double(x):
    return 2 * x


@engine.remote
def nested(x):
    return sum(engine.get([double.remote(x + i) for i in range(3)]))


@engine.remote(max_concurrency=4)
class Fanout:
    def gather(self, x):
        return engine.get(nested.remote(x))


def test_many_driver_threads_blocked_in_get_each_get_their_own_values():
    results: dict[int, list] = {}
    failures: list = []

    def caller(k: int) -> None:
        try:
            results[k] = [engine.get(double.remote(k * 1000 + i), timeout=60) for i in range(40)]
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures and all(not t.is_alive() for t in threads)
    assert results == {k: [2 * (k * 1000 + i) for i in range(40)] for k in range(8)}


def test_gets_in_tasks_and_in_an_actors_threads_get_their_values():
    assert engine.get([nested.remote(x) for x in range(10)], timeout=60) == [6 * x + 6 for x in range(10)]
    actor = Fanout.remote()
    assert engine.get([actor.gather.remote(x) for x in range(12)], timeout=60) == [6 * x + 6 for x in range(12)]


def test_a_get_that_times_out_while_reading_raises_and_the_next_get_works():
    @engine.remote
    def slow():
        import time

        time.sleep(30)  # the work itself, cancelled below

    ref = slow.remote()
    with pytest.raises(engine.GetTimeoutError):
        engine.get(ref, timeout=0.2)
    engine.cancel(ref, force=True)
    assert engine.get(double.remote(21), timeout=60) == 42


@engine.remote
def takes_50ms():
    import time

    time.sleep(0.05)  # the work itself: a task far longer than any spin window
    return 1


def test_a_driver_stops_spinning_in_get_after_three_long_waits():
    spin = object_ref.current_worker()._spin
    for _ in range(3):
        assert engine.get(takes_50ms.remote(), timeout=60) == 1
    assert spin.window_ns == 0  # halved at each wait from at most MAX_NS (spin_window.py)
    spin.validate_state()


def test_a_get_timeout_shorter_than_the_spin_window_is_kept():
    ref = takes_50ms.remote()
    with pytest.raises(engine.GetTimeoutError):
        engine.get(ref, timeout=1e-5)
    assert engine.get(ref, timeout=60) == 1


@pytest.mark.parametrize("bad", [-1, 2e6, "200us", None])
def test_a_bad_spin_window_is_refused_in_one_line(bad):
    with pytest.raises(ValueError, match=r"^get_spin_us must be a number of microseconds from 0 \(off\) to 1e6, got "):
        engine.init(get_spin_us=bad)
