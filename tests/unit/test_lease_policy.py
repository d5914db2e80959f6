"""LeasePolicy: where to ask for a lease (argument locality) and how deep to pipeline."""

from __future__ import annotations

from types import SimpleNamespace

from ownrun.engine.ownership.lease_policy import LeasePolicy

LOCAL, D1, D2 = "tcp://local", "tcp://d1", "tcp://d2"


def test_lease_goes_to_the_node_holding_most_argument_bytes():
    assert LeasePolicy.locality({D1: 10, D2: 30}, LOCAL, set()) == D2


def test_no_preference_without_shared_memory_arguments():
    assert LeasePolicy.locality(None, LOCAL, set()) is None
    assert LeasePolicy.locality({}, LOCAL, set()) is None


def test_our_own_or_a_dead_node_means_asking_the_local_daemon():
    assert LeasePolicy.locality({LOCAL: 30, D1: 10}, LOCAL, set()) is None
    assert LeasePolicy.locality({D1: 30}, LOCAL, {D1}) is None


def test_unmeasured_and_long_tasks_are_not_pipelined():
    policy = LeasePolicy(max_in_flight=8)
    entry = SimpleNamespace(fn_id="f")
    assert policy.depth(entry) == 1
    policy.task_ran("f", 0.5)
    assert policy.depth(entry) == 1


def test_short_tasks_are_pipelined_up_to_max_in_flight():
    policy = LeasePolicy(max_in_flight=8)
    entry = SimpleNamespace(fn_id="f")
    for _ in range(3):
        policy.task_ran("f", 0.0001)
    assert policy.depth(entry) == 8


def test_runtime_is_a_moving_average():
    policy = LeasePolicy()
    policy.task_ran("f", 1.0)
    policy.task_ran("f", 0.0)
    assert abs(policy.runtime["f"] - 0.8) < 1e-9
