"""Node liveness at the head (engine/head/liveness.py), driven by hand with time passed in;
`validate_state()` after every step."""

from __future__ import annotations

import inspect

import pytest
from ownrun.engine.head.liveness import (
    ALIVE,
    DEAD,
    DEFAULT_DEAD_AFTER,
    SUSPECT,
    Cleared,
    Dead,
    Fence,
    NodeLiveness,
    Suspect,
)


class Checked:
    """A NodeLiveness whose every method call is followed by `validate_state()`."""

    def __init__(self, machine: NodeLiveness):
        self._machine = machine

    def __getattr__(self, name):
        value = getattr(self._machine, name)
        if not callable(value) or name == "validate_state":
            return value

        def checked(*args, **kwargs):
            result = value(*args, **kwargs)
            self._machine.validate_state()
            return result

        return checked


@pytest.fixture
def live():
    machine = Checked(NodeLiveness(suspect_after=1.0, dead_after=10.0))
    machine.beat("a", 0.0)
    machine.beat("b", 0.0)
    return machine


def test_a_silent_node_is_suspected_before_it_is_declared_dead(live):
    live.beat("b", 0.9)
    assert live.tick(0.9) == []
    assert live.tick(1.5) == [Suspect("a", 1.5)]
    assert live.state == {"a": SUSPECT, "b": ALIVE}
    assert live.tick(2.5) == [Suspect("b", pytest.approx(1.6))]
    assert live.tick(5.0) == []  # suspected once, not on every tick
    assert live.is_suspect("a") and not live.is_dead("a")


def test_a_suspect_node_that_beats_again_is_cleared_and_not_declared_dead(live):
    live.tick(2.5)  # a 2.5 s pause (SIGSTOP) of both nodes
    assert live.beat("a", 2.6) == [Cleared("a")]
    assert live.beat("a", 2.7) == []
    assert live.state["a"] == ALIVE
    assert live.tick(10.5) == [Suspect("a", pytest.approx(7.8)), Dead("b", "no heartbeat for 10.5s (timeout 10s)")]
    assert live.state == {"a": SUSPECT, "b": DEAD}


def test_a_node_silent_for_the_death_timeout_is_declared_dead_once(live):
    live.beat("b", 9.5)
    steps = live.tick(10.2)
    assert [type(s) for s in steps] == [Dead] and steps[0].node_id == "a"
    assert live.tick(30.0) == [Dead("b", "no heartbeat for 20.5s (timeout 10s)")]
    assert live.tick(60.0) == []


def test_a_death_the_os_reports_is_dead_at_once_whatever_the_timers(live):
    assert live.lost("a", "its daemon exited") == [Dead("a", "its daemon exited")]
    assert live.lost("a", "again") == []  # dead once
    assert live.lost("unknown", "never beat") == []
    live.tick(1.5)
    assert live.lost("b", "its daemon exited") == [Dead("b", "its daemon exited")]  # suspect -> dead


def test_a_dead_node_that_speaks_again_is_fenced_and_stays_dead(live):
    live.tick(11.0)
    assert live.beat("a", 12.0) == [Fence("a", "no heartbeat for 11.0s (timeout 10s)")]
    assert live.beat("a", 12.1) == [Fence("a", "no heartbeat for 11.0s (timeout 10s)")]
    assert live.is_dead("a") and live.tick(100.0) == []
    assert live.beat("a2", 12.2) == []  # its replacement joins under a new id


def test_the_heads_own_stall_does_not_count_against_the_nodes(live):
    live.forgive_stall(now=12.0, stalled_for=11.5)  # the head did not run from 0.5 to 12.0
    assert live.tick(12.0) == []
    assert live.last_beat == {"a": 11.5, "b": 11.5}
    live.forgive_stall(now=12.0, stalled_for=50.0)  # never beyond now
    assert live.last_beat == {"a": 12.0, "b": 12.0}


def test_nodes_from_a_restarted_heads_table_keep_their_state():
    live = Checked(NodeLiveness(1.0, 10.0))
    live.known("alive", True, now=100.0)
    live.known("gone", False, now=100.0)
    assert live.tick(100.5) == []  # a full timeout of grace
    assert [type(s) for s in live.beat("gone", 101.0)] == [Fence]
    assert live.tick(111.0) == [Dead("alive", "no heartbeat for 11.0s (timeout 10s)")]


def test_a_suspect_timeout_longer_than_the_death_timeout_is_capped():
    live = Checked(NodeLiveness(suspect_after=5.0, dead_after=2.0))
    assert live.suspect_after == 2.0
    live.beat("a", 0.0)
    assert [type(s) for s in live.tick(2.5)] == [Dead]


def test_timeouts_must_be_positive():
    with pytest.raises(ValueError):
        NodeLiveness(0, 10)


def test_ownrun_start_defaults_to_the_liveness_death_timeout():
    from ownrun.cli import start

    default = inspect.signature(start.start).parameters["node_timeout"].default
    assert default == DEFAULT_DEAD_AFTER
