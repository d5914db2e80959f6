"""Reads of objects already in this node's store need no round trip to the daemon (issue 8 §1),
and a cached pin never lets a view see reused memory."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import wait_for
from ownrun import engine
from ownrun.engine import debug
from ownrun.engine.rpc import protocol as P

pytestmark = pytest.mark.usefixtures("cluster")

BIG = 1 << 20


def store_objects() -> int:
    return debug.node_stats()["store"]["num_objects"]


@engine.remote
def make(fill: float):
    return np.full(BIG // 8, fill)


def test_get_of_own_put_and_repeated_gets_ask_the_daemon_at_most_once(daemon_calls):
    ref = engine.put(np.full(BIG // 8, 3.0))
    for _ in range(3):
        assert engine.get(ref)[-1] == 3.0
    assert P.OBJ_GET not in daemon_calls  # the put's pin was kept
    result = make.remote(4.0)
    engine.wait([result])
    for _ in range(3):
        assert engine.get(result)[0] == 4.0
    assert daemon_calls.count(P.OBJ_GET) <= 1  # once for the task's result, then cached
    del ref, result
    wait_for(lambda: store_objects() == 0, message="both objects freed once unused")


def test_a_view_keeps_its_memory_after_the_ref_is_gone_and_frees_it_after():
    ref = engine.put(np.full(BIG // 8, 1.0))
    view = engine.get(ref)
    del ref
    for fill in range(2, 12):  # puts that would reuse the room if it were freed
        other = engine.put(np.full(BIG // 8, float(fill)))
        assert engine.get(other)[0] == fill
        del other
    assert view.min() == view.max() == 1.0
    assert store_objects() >= 1
    del view
    wait_for(lambda: store_objects() == 0, message="the last view's pin released")
