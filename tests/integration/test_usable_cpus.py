"""A node's default CPUs follow what the driver's process may use: a driver pinned to one CPU
(`taskset -c 0`, `docker --cpuset-cpus=0`) starts a node of 1 CPU, not the machine's count, and
its get compares the runnable tasks with 1 before it spins (engine/util/cpus.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROGRAM = """
import os
from ownrun import engine
from ownrun.engine.worker import spin_window
engine.init()
try:
    print(engine.cluster_resources()["CPU"], spin_window._CPUS, flush=True)
finally:
    engine.shutdown()
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to pin to fewer")
def test_a_driver_pinned_to_one_cpu_starts_a_node_of_one_cpu():
    result = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120,
                            preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1.0", "1"]
