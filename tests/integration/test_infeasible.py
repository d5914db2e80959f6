"""Infeasible resource requests wait for a node that fits (issue 11 §4), as Ray's do."""

from __future__ import annotations

import pytest
from ownrun import engine

from tests.conftest import wait_for


def _where():
    return engine.get_runtime_context().node_id


def test_an_infeasible_task_waits_with_a_warning_and_runs_when_a_node_that_fits_joins(capfd):
    engine.init(num_cpus=1)
    try:
        ref = engine.remote(num_cpus=1, resources={"special": 1})(_where).remote()
        with pytest.raises(engine.GetTimeoutError):
            engine.get(ref, timeout=0.5)  # get(timeout=...) still bounds the wait
        seen = []
        wait_for(lambda: seen.append(capfd.readouterr().err) or "cannot be scheduled right now" in "".join(seen),
                 timeout=30, message="the one-line warning naming the shape")
        warning = next(line for line in "".join(seen).splitlines() if "cannot be scheduled" in line)
        assert "'special': 1" in warning
        node_id = engine.cluster.add_node(num_cpus=1, resources={"special": 1})
        assert engine.get(ref, timeout=60) == node_id
    finally:
        engine.shutdown()
