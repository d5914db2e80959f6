"""Owners sharing the CPU-sized workers of a 2-CPU cluster: an owner whose next task waits
only for the last one's result keeps its lease through the daemon's recall (no hand-back and
new request per task), and gives it back once nothing of the shape waits, so the other owners
run too."""

from __future__ import annotations

import time

from ownrun import engine
from ownrun.engine import debug

CHAIN = 30
OWNERS = 4  # on 2 CPUs: half of them wait for a worker at any time


@engine.remote
def step(value: int) -> int:
    time.sleep(0.002)  # the task's work: long enough that the owners' chains overlap
    return value + 1


@engine.remote(num_cpus=0)
def chain_owner(length: int) -> tuple[int, dict]:
    ref = step.remote(0)
    for _ in range(length - 1):
        ref = step.remote(ref)  # each waits for the one before
    value = engine.get(ref, timeout=120)
    return value, debug.owner_stats()


def test_owners_of_chains_sharing_workers_keep_their_lease_through_a_recall(cluster):
    results = engine.get([chain_owner.remote(CHAIN) for _ in range(OWNERS)], timeout=180)
    assert [value for value, _ in results] == [CHAIN] * OWNERS  # every owner ran, none starved
    requests = [stats["lease_requests"] for _, stats in results]
    returned = [stats["leases_returned"] for _, stats in results]
    # One lease for a whole chain (a few if a grant crossed a hand-back); handing the lease
    # back after each task, as a recalled owner did, asked CHAIN times.
    assert max(requests) <= 5, requests
    assert all(r <= q for r, q in zip(returned, requests, strict=True)), (returned, requests)
