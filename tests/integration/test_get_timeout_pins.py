"""A `get` whose timeout expires while its object is still being pulled from another node leaves
no pin behind: the pin the daemon takes when the pull lands is this process's cached pin, read
by the next `get` without a round trip and released with the other unused pins."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NODE_DEATH_TIMEOUT, add_node_ready, wait_for
from ownrun import engine
from ownrun.engine import debug

SIZE = 64 << 20  # pulled in 4 MiB chunks: far longer than the get's timeout


def _make():
    return np.ones(SIZE // 8)


def test_a_get_that_times_out_during_a_pull_leaks_no_pin():
    assert not engine.is_initialized(), "this test starts its own cluster"
    engine.init(num_cpus=0, node_death_timeout=NODE_DEATH_TIMEOUT)
    try:
        add_node_ready(num_cpus=1, resources={"far": 1})
        ref = engine.remote(num_cpus=0, resources={"far": 1})(_make).remote()
        engine.wait([ref], timeout=60, fetch_local=False)  # made on the other node, not pulled
        assert debug.node_stats()["store"]["num_objects"] == 0
        with pytest.raises(engine.GetTimeoutError):
            engine.get(ref, timeout=0.001)
        wait_for(lambda: debug.node_stats()["store"]["num_objects"] == 1, timeout=60,
                 message="the pull to land after the timed-out get")
        assert engine.get(ref, timeout=60).sum() == SIZE // 8  # the landed copy, read
        wait_for(lambda: debug.node_stats()["store"]["pinned_bytes"] == 0, timeout=30,
                 message="every pin of this process on the pulled copy released")
    finally:
        engine.shutdown()
