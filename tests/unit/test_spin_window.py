"""The spin window of a driver's get (worker/spin_window.py): how it adapts to the waits it
sees, with no clock (waits are given), and how the machine's runnable tasks are read."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ownrun.engine.worker import spin_window
from ownrun.engine.worker.spin_window import MAX_NS, START_NS, SpinWindow


def test_waits_the_window_catches_leave_it_as_it_is():
    window = SpinWindow()
    for _ in range(100):
        window.waited(60_000)  # a sync round trip read while spinning
        window.validate_state()
    assert window.window_ns == MAX_NS


def test_long_waits_stop_the_spinning_after_three_and_short_ones_bring_it_back():
    window = SpinWindow()
    seen = []
    for _ in range(4):
        window.waited(5_000_000)  # a 5 ms task: a spin would only have burnt the CPU
        window.validate_state()
        seen.append(window.window_ns)
    assert seen == [MAX_NS // 2, MAX_NS // 4, 0, 0]
    seen = []
    for _ in range(3):
        window.waited(150_000)  # slept, but a longer spin would have caught it
        window.validate_state()
        seen.append(window.window_ns)
    assert seen == [START_NS, 2 * START_NS, MAX_NS]


def test_a_round_trip_that_slept_longer_than_the_window_still_grows_it_back():
    window = SpinWindow()
    for _ in range(3):
        window.waited(5_000_000)
    assert window.window_ns == 0
    window.waited(MAX_NS + 100_000)  # a sync call without the spin: its wake-ups made it longer
    window.validate_state()
    assert window.window_ns == START_NS
    window.waited(2 * MAX_NS + 1)  # longer than that: a task, not a round trip
    window.validate_state()
    assert window.window_ns == 0


def test_a_window_of_zero_means_never_spin():
    window = SpinWindow(max_ns=0)
    for waited in (10_000, 150_000, 5_000_000):
        window.waited(waited)
        window.validate_state()
        assert window.window_ns == 0


@given(st.lists(st.integers(min_value=0, max_value=10**8), max_size=60),
       st.integers(min_value=0, max_value=10**6))
def test_the_window_stays_within_its_bounds_whatever_the_waits(waits, max_ns):
    window = SpinWindow(max_ns=max_ns)
    window.validate_state()
    wasted = 0
    for waited in waits:
        before = window.window_ns
        window.waited(waited)
        window.validate_state()
        if waited > max(before, window.grow_within_ns):  # a long wait: the whole window was spent for nothing
            wasted += before
        else:
            wasted = 0
        # a run of long waits costs at most a window and its halves
        assert wasted <= 2 * window.max_ns


@pytest.mark.parametrize("text, runnable", [
    (b"0.71 0.93 1.18 2/345 12345\n", 2),
    (b"97.00 20.1 3.0 117/2045 1\n", 117),
])
def test_runnable_tasks_are_read_from_the_fourth_field(text, runnable):
    assert spin_window.runnable_tasks(text) == runnable


def test_spare_cpu_compares_this_machine_s_runnable_tasks_with_its_cpus(monkeypatch):
    with open("/proc/loadavg", "rb") as loadavg:
        assert spin_window.runnable_tasks(loadavg.read()) >= 1  # this test runs
    monkeypatch.setattr(spin_window, "_CPUS", 10**6)
    assert spin_window.spare_cpu()
    monkeypatch.setattr(spin_window, "_CPUS", 0)  # the test itself is runnable: more than 0
    assert not spin_window.spare_cpu()


def test_no_loadavg_means_no_spare_cpu(monkeypatch):
    monkeypatch.setattr(spin_window, "_loadavg_fd", -1)  # a closed descriptor: reading fails
    assert not spin_window.spare_cpu()
