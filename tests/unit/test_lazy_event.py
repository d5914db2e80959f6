"""LazyEvent: threading.Event's semantics, with the Event made only for a blocking wait."""

import threading
import time

from ownrun.engine.util.lazy_event import LazyEvent


def test_a_flag_set_before_the_wait_needs_no_event():
    event = LazyEvent()
    assert not event.is_set()
    event.set()
    assert event.is_set() and event.wait(0) and event.wait()
    assert event._event is None  # nobody blocked: no lock, no condition


def test_a_wait_that_times_out_returns_false_and_a_cleared_flag_waits_again():
    event = LazyEvent()
    assert event.wait(0) is False
    event.set()
    event.clear()
    assert not event.is_set() and event.wait(0) is False
    event.set()
    assert event.wait(0) is True


def test_a_set_from_another_thread_wakes_a_blocked_wait():
    event, woke = LazyEvent(), []
    waiter = threading.Thread(target=lambda: woke.append(event.wait(30)))
    waiter.start()
    deadline = time.monotonic() + 30
    while event._event is None and time.monotonic() < deadline:  # the waiter is about to block
        time.sleep(0)
    event.set()
    waiter.join(30)
    assert woke == [True] and not waiter.is_alive()


def test_sets_racing_waits_are_never_lost():
    for _ in range(200):
        event, woke = LazyEvent(), []
        waiter = threading.Thread(target=lambda: woke.append(event.wait(30)))  # noqa: B023
        waiter.start()
        event.set()
        waiter.join(30)
        assert woke == [True]
