"""Lineage reconstruction of task results, small (inline) ones included, on a multi-node cluster.

Each test starts its own embedded cluster, adds nodes, kills one and checks that the owner
rebuilds what was lost from lineage (or names the real cause when it cannot).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import add_node_ready as add_node
from conftest import wait_for
from ownrun import engine
from ownrun.engine import cluster

MIB = 1024 * 1024


@engine.remote(resources={"w": 1}, num_cpus=0)
def small_on_w():
    return 7


@engine.remote(resources={"w": 1}, num_cpus=0, max_retries=0)
def small_on_w_no_retries():
    return 7


@engine.remote(resources={"w": 1}, num_cpus=0)
def fill_on_w(x):
    return np.full(MIB // 8, float(x))


def _node_alive(node_id: str):
    return next((n["alive"] for n in cluster.nodes() if n["node_id"] == node_id), None)


def _big_from_small_then_kill(head_node, small):
    """B (large result, on node w1) consumes A's small result by ref; then w1 dies."""
    first = add_node(num_cpus=1, resources={"w": 1})
    big = fill_on_w.remote(small.remote())  # A's ref is dropped: only lineage remembers A
    ready, _ = engine.wait([big], timeout=30, fetch_local=False)  # its only copy stays on w1
    assert ready, "the task finished"
    add_node(num_cpus=1, resources={"w": 1})  # somewhere to rebuild on
    cluster.kill_node(first)
    wait_for(lambda: _node_alive(first) is False, timeout=60,
             message="the head declares the node dead")
    return big


def test_large_result_of_a_task_fed_by_a_small_task_result_is_rebuilt_after_its_node_died(head_node):
    big = _big_from_small_then_kill(head_node, small_on_w)
    result = engine.get(big, timeout=60)
    np.testing.assert_array_equal(result, np.full(MIB // 8, 7.0))


def test_unrebuildable_small_argument_error_names_the_task_not_put(head_node):
    big = _big_from_small_then_kill(head_node, small_on_w_no_retries)
    with pytest.raises(engine.ObjectLostError) as info:
        engine.get(big, timeout=60)
    message = str(info.value)
    assert "put()" not in message, message
    assert "small_on_w_no_retries" in message, message


# ---- secondary copies known to the owner -----------------------------------------------------------
@engine.remote(resources={"a": 1}, num_cpus=0, max_retries=0)
def big_on_a_without_retries():
    return np.full(MIB // 8, 3.0)


@engine.remote(resources={"b": 1}, num_cpus=0)
def total_on_b(array):
    return float(array.sum())


def test_lost_result_with_a_copy_on_a_live_node_is_served_from_that_copy(head_node):
    from ownrun.engine.api import _core

    node_a = add_node(num_cpus=1, resources={"a": 1})
    add_node(num_cpus=1, resources={"b": 1})
    big = big_on_a_without_retries.remote()  # no retries: only the copy can save it
    assert engine.get(total_on_b.remote(big), timeout=30) == 3.0 * (MIB // 8)  # node b pulls a copy
    reconstructions = _core().counters["reconstructions"]
    cluster.kill_node(node_a)
    wait_for(lambda: _node_alive(node_a) is False, timeout=60,
             message="the head declares the node dead")
    np.testing.assert_array_equal(engine.get(big, timeout=30), np.full(MIB // 8, 3.0))
    assert _core().counters["reconstructions"] == reconstructions
    assert "pin_copy" in [event for event, _ in _core().history(big.id)]
