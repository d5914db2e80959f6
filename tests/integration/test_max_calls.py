"""`max_calls`: a worker runs a function at most that many times, then exits (a fresh one
runs the next call); one that still owns objects others use is never leased again and exits
once it may."""

from __future__ import annotations

import collections
import os

from conftest import process_gone, wait_for
from ownrun import engine


@engine.remote(max_calls=2)
def pid():
    return os.getpid()


@engine.remote(max_calls=1)
def pid_and_object():
    return os.getpid(), [engine.put(b"x" * 10)]  # this worker owns the object the caller gets


def test_max_calls_runs_each_worker_at_most_that_many_times_then_it_exits(cluster):
    pids = [engine.get(pid.remote(), timeout=60) for _ in range(6)]
    counts = collections.Counter(pids)
    assert max(counts.values()) <= 2 and len(counts) >= 3
    spent = [p for p, n in counts.items() if n == 2]
    wait_for(lambda: all(process_gone(p) for p in spent), timeout=60,
             message="workers that ran max_calls tasks exit")


def test_max_calls_worker_owning_objects_is_not_reused_and_exits_once_they_are_freed(cluster):
    owner_pid, [inner] = engine.get(pid_and_object.remote(), timeout=60)
    assert engine.get(inner, timeout=60) == b"x" * 10  # its owner is alive while we use it
    later = {engine.get(pid_and_object.remote(), timeout=60)[0] for _ in range(3)}
    assert owner_pid not in later  # retired: never leased again
    assert not process_gone(owner_pid)
    del inner
    wait_for(lambda: process_gone(owner_pid), timeout=60,
             message="the retired worker exits once it owns nothing (asked again after 5 s)")
