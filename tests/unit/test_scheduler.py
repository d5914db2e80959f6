"""LeaseScheduler, driven with events and checked by the decisions it returns (no I/O).

Every event goes through `Checked`, which runs `validate_state()` after it."""

from __future__ import annotations

import itertools
import random

import pytest
from ownrun.engine.node.scheduler import (
    DEAD,
    IDLE,
    LEASED,
    REAP_QUERIED,
    RECALL_HOLDS_S,
    RECALL_REPEAT_S,
    STARTING,
    LeaseRequest,
    LeaseScheduler,
)

OWNER_A = "tcp://owner-a"
OWNER_B = "tcp://owner-b"


class Checked:
    """A scheduler whose every method call is followed by `validate_state()`."""

    def __init__(self, sched: LeaseScheduler):
        self._sched = sched

    def __getattr__(self, name):
        value = getattr(self._sched, name)
        if not callable(value) or name == "validate_state":
            return value

        def checked(*args, **kwargs):
            result = value(*args, **kwargs)
            self._sched.validate_state()
            return result

        return checked


@pytest.fixture
def make_scheduler():
    def make(cpus: float = 2, max_idle_workers: int = 4, **resources) -> LeaseScheduler:
        ids = (f"w{i}".encode() for i in itertools.count())
        sched = LeaseScheduler({"CPU": float(cpus), **resources}, lambda: next(ids), max_idle_workers,
                               recheck_period=5.0, query_timeout=10.0)
        sched.validate_state()
        return Checked(sched)

    return make


_request_ids = itertools.count(1)


def request(owner: str = OWNER_A, cpus: float = 1, for_actor: bool = False, **resources) -> LeaseRequest:
    res = {"CPU": float(cpus), **resources} if cpus else dict(resources)
    return LeaseRequest(owner, owner.encode(), next(_request_ids), res, for_actor)


def start_idle(sched: LeaseScheduler, count: int) -> list[bytes]:
    ids = sched.prestart(count)
    for i, worker_id in enumerate(ids):
        out = sched.worker_ready(worker_id, f"tcp://{worker_id.decode()}", 1000 + i)
        assert not out.grants and not out.start
    return ids


def lease(sched: LeaseScheduler, req: LeaseRequest) -> bytes:
    """Requests a lease and brings up a worker if one must start; returns the worker id."""
    out = sched.request(req)
    if out.start:
        (worker_id,) = out.start
        out = sched.worker_ready(worker_id, f"tcp://{worker_id.decode()}", 2000)
    (granted_req, worker) = out.grants[0]
    assert granted_req is req
    return worker.worker_id


def test_request_is_granted_an_idle_worker(make_scheduler):
    sched = make_scheduler()
    idle = start_idle(sched, 2)
    req = request()
    out = sched.request(req)
    assert out.start == []
    assert len(out.grants) == 1
    granted_req, worker = out.grants[0]
    assert granted_req is req and worker.worker_id in idle
    assert worker.state == LEASED and worker.lease is req
    assert sched.available["CPU"] == 1.0


def test_worker_is_started_when_none_is_idle(make_scheduler):
    sched = make_scheduler()
    req = request()
    out = sched.request(req)
    assert out.grants == []
    assert len(out.start) == 1
    worker_id = out.start[0]
    assert sched.workers[worker_id].state == STARTING
    assert sched.available["CPU"] == 1.0  # reserved for the starting worker
    out = sched.worker_ready(worker_id, "tcp://w", 1234)
    assert [(r, w.worker_id) for r, w in out.grants] == [(req, worker_id)]
    assert sched.workers[worker_id].state == LEASED
    assert sched.workers[worker_id].pid == 1234


def test_request_queues_when_resources_are_exhausted_and_owners_are_asked_to_return_leases(
        make_scheduler):
    sched = make_scheduler(cpus=2)
    start_idle(sched, 2)
    first = lease(sched, request(OWNER_A))
    lease(sched, request(OWNER_A))
    waiting = request(OWNER_B)
    out = sched.request(waiting)
    assert out.grants == [] and out.start == []
    assert list(sched.pending) == [waiting]
    assert out.recall == {OWNER_A}
    assert sched.usage()["pending_leases"] == 1
    out = sched.lease_returned(first)
    assert [(r, w.worker_id) for r, w in out.grants] == [(waiting, first)]
    assert not sched.pending
    assert sched.available["CPU"] == 0.0


def test_blocked_worker_gives_its_cpu_to_a_second_request(make_scheduler):
    sched = make_scheduler(cpus=1)
    start_idle(sched, 1)
    parent = lease(sched, request(OWNER_A))
    child_req = request(OWNER_B)
    assert sched.request(child_req).grants == []
    out = sched.worker_blocked(parent)  # the parent task waits in get()
    assert len(out.start) == 1  # no idle worker: a new one starts for the child
    child = out.start[0]
    out = sched.worker_ready(child, "tcp://child", 77)
    assert [(r, w.worker_id) for r, w in out.grants] == [(child_req, child)]
    assert sched.available["CPU"] == 0.0
    sched.worker_unblocked(parent)
    assert sched.available["CPU"] == -1.0  # oversubscribed until one returns
    sched.lease_returned(child)
    sched.lease_returned(parent)
    assert sched.available["CPU"] == 1.0


def test_requests_of_blocked_owners_are_served_first(make_scheduler):
    sched = make_scheduler(cpus=1)
    start_idle(sched, 1)
    parent = lease(sched, request(OWNER_A))
    other = request(OWNER_B)  # queued first, by an owner that is not blocked
    sched.request(other)
    child_req = request(sched.workers[parent].address)  # the parent task submits a child
    sched.request(child_req)
    out = sched.worker_blocked(parent)
    (starting,) = out.start
    assert sched.workers[starting].lease is child_req
    assert list(sched.pending) == [other]


def test_nested_blocking_releases_the_cpu_once(make_scheduler):
    sched = make_scheduler(cpus=1)
    start_idle(sched, 1)
    worker = lease(sched, request())
    sched.worker_blocked(worker)
    sched.worker_blocked(worker)
    assert sched.available["CPU"] == 1.0
    sched.worker_unblocked(worker)
    assert sched.available["CPU"] == 1.0
    sched.worker_unblocked(worker)
    assert sched.available["CPU"] == 0.0


def test_lease_returned_while_blocked_does_not_release_twice(make_scheduler):
    sched = make_scheduler(cpus=1)
    start_idle(sched, 1)
    worker = lease(sched, request())
    sched.worker_blocked(worker)
    sched.lease_returned(worker)
    assert sched.available["CPU"] == 1.0
    assert sched.workers[worker].state == IDLE


def test_actor_gets_a_dedicated_new_worker_it_keeps(make_scheduler):
    sched = make_scheduler(cpus=2)
    idle = start_idle(sched, 1)
    actor_req = request(cpus=0, for_actor=True)
    out = sched.request(actor_req)
    assert out.grants == []
    assert len(out.start) == 1 and out.start[0] not in idle
    actor_worker = out.start[0]
    assert sched.workers[actor_worker].dedicated
    sched.worker_ready(actor_worker, "tcp://actor", 5)
    # A normal task still gets the idle pooled worker, never the actor's.
    out = sched.request(request())
    assert [w.worker_id for _, w in out.grants] == idle
    # The actor's worker does not go back to the pool when its lease ends.
    sched.lease_returned(actor_worker)
    assert actor_worker not in sched.idle


def test_zero_cpu_actors_do_not_use_cpus(make_scheduler):
    sched = make_scheduler(cpus=2)
    starts = [sched.request(request(cpus=0, for_actor=True)).start for _ in range(20)]
    assert all(len(s) == 1 for s in starts)
    assert sched.available["CPU"] == 2.0
    assert not sched.pending


def test_owner_died_drops_its_requests_and_returns_its_workers(make_scheduler):
    sched = make_scheduler(cpus=2)
    start_idle(sched, 2)
    a_worker = lease(sched, request(OWNER_A))
    b_worker = lease(sched, request(OWNER_B))
    sched.request(request(OWNER_A))
    sched.request(request(OWNER_B))
    assert len(sched.pending) == 2
    workers = sched.owner_died(OWNER_A)
    assert workers == [a_worker]
    assert [r.owner_addr for r in sched.pending] == [OWNER_B]
    assert b_worker not in workers


def test_worker_starting_for_a_dead_owners_actor_is_not_granted_and_frees_its_resources(make_scheduler):
    sched = make_scheduler(cpus=1)
    out = sched.request(request(OWNER_A, for_actor=True))
    [starting] = out.start
    assert sched.available["CPU"] == 0
    assert sched.owner_died(OWNER_A) == []  # nothing to kill: it has no process yet
    assert sched.available["CPU"] == 1
    ready = sched.worker_ready(starting, "ipc://w", 42)
    assert ready.grants == [] and sched.workers[starting].state == IDLE
    granted = sched.request(request(OWNER_B, for_actor=True))
    assert granted.start  # the freed CPU is there for the next actor


def test_detached_actors_worker_outlives_its_owner(make_scheduler):
    sched = make_scheduler(cpus=2)
    detached = request(OWNER_A, for_actor=True)
    detached.detached = True
    [actor_worker] = sched.request(detached).start
    sched.worker_ready(actor_worker, "ipc://w", 42)
    plain = lease(sched, request(OWNER_A, for_actor=True))
    assert sched.owner_died(OWNER_A) == [plain]


def test_dead_leased_worker_frees_its_resources_for_waiting_requests(make_scheduler):
    sched = make_scheduler(cpus=1)
    start_idle(sched, 1)
    worker = lease(sched, request(OWNER_A))
    waiting = request(OWNER_B)
    sched.request(waiting)
    dead, out = sched.worker_died(worker)
    assert dead.state == DEAD
    assert worker not in sched.workers
    assert len(out.start) == 1  # no idle worker left: start one for the waiting request
    assert sched.workers[out.start[0]].lease is waiting


def test_worker_dying_while_starting_requeues_its_request(make_scheduler):
    sched = make_scheduler(cpus=1)
    req = request()
    (starting,) = sched.request(req).start
    _, out = sched.worker_died(starting)
    assert len(out.start) == 1 and out.start[0] != starting
    assert sched.workers[out.start[0]].lease is req
    assert sched.available["CPU"] == 0.0


def test_cancelled_request_is_not_granted(make_scheduler):
    sched = make_scheduler(cpus=1)
    start_idle(sched, 1)
    worker = lease(sched, request(OWNER_A))
    queued = request(OWNER_B)
    sched.request(queued)
    sched.cancel(OWNER_B, queued.request_id)
    out = sched.lease_returned(worker)
    assert out.grants == []
    assert not sched.pending


def test_infeasible_shapes_are_recognised(make_scheduler):
    sched = make_scheduler(cpus=2, GPU=1)
    assert sched.feasible({"CPU": 2})
    assert sched.feasible({"GPU": 1, "CPU": 0})
    assert not sched.feasible({"CPU": 3})
    assert not sched.feasible({"TPU": 1})


def test_custom_resources_are_accounted(make_scheduler):
    sched = make_scheduler(cpus=4, disk=1)
    start_idle(sched, 2)
    first = request(cpus=1, disk=1)
    assert sched.request(first).grants
    second = request(cpus=1, disk=1)
    assert sched.request(second).grants == []
    assert sched.available == {"CPU": 3.0, "disk": 0.0}


def test_idle_workers_beyond_the_limit_are_asked_then_stopped(make_scheduler):
    sched = make_scheduler(cpus=4, max_idle_workers=1)
    start_idle(sched, 2)
    w1 = lease(sched, request())
    w2 = lease(sched, request())
    out = sched.lease_returned(w1, now=1.0)
    assert out.stop == [] and out.reap_query == []
    out = sched.lease_returned(w2, now=2.0)
    assert out.stop == [] and out.reap_query == [w1]  # the oldest idle worker is asked first
    assert sched.workers[w1].state == REAP_QUERIED
    assert sched.idle == [w2]
    out = sched.reap_answer(w1, may_exit=True, now=2.1)
    assert out.stop == [w1]
    assert sched.workers[w1].state == DEAD
    assert sched.usage()["reaped"] == 1


def test_idle_worker_that_owns_objects_is_kept_and_the_next_oldest_is_asked(make_scheduler):
    sched = make_scheduler(cpus=4, max_idle_workers=1)
    start_idle(sched, 3)
    w1, w2, w3 = (lease(sched, request()) for _ in range(3))
    sched.lease_returned(w1, now=1.0)
    assert sched.lease_returned(w2, now=2.0).reap_query == [w1]
    out = sched.reap_answer(w1, may_exit=False, now=2.1)  # it owns a live object
    assert out.stop == []
    assert out.reap_query == [w2]  # still over the limit: the next oldest is asked
    assert sched.workers[w1].state == IDLE
    assert sched.usage()["kept_owners"] == 1
    out = sched.reap_answer(w2, may_exit=True, now=2.2)
    assert out.stop == [w2]
    # More returns do not ask the owner again before its recheck period has passed.
    out = sched.lease_returned(w3, now=3.0)
    assert out.reap_query == [w3]


def test_kept_owner_is_asked_again_after_the_recheck_period(make_scheduler):
    sched = make_scheduler(cpus=4, max_idle_workers=0)
    start_idle(sched, 1)
    (w1,) = [lease(sched, request())]
    assert sched.lease_returned(w1, now=1.0).reap_query == [w1]
    assert sched.reap_answer(w1, may_exit=False, now=1.0).reap_query == []
    assert sched.tick(now=5.9).reap_query == []
    assert sched.tick(now=6.0).reap_query == [w1]  # recheck_period 5 s
    assert sched.reap_answer(w1, may_exit=True, now=6.1).stop == [w1]


def test_unanswered_reap_query_keeps_the_worker(make_scheduler):
    sched = make_scheduler(cpus=4, max_idle_workers=0)
    start_idle(sched, 1)
    w1 = lease(sched, request())
    assert sched.lease_returned(w1, now=1.0).reap_query == [w1]
    assert sched.tick(now=10.9).stop == []
    assert sched.workers[w1].state == REAP_QUERIED
    out = sched.tick(now=11.0)  # query_timeout 10 s: treated as "it owns something"
    assert out.stop == [] and out.reap_query == []
    assert sched.workers[w1].state == IDLE
    assert sched.reap_answer(w1, may_exit=True, now=11.1).stop == []  # a late answer is ignored


def test_worker_being_asked_is_not_leased(make_scheduler):
    sched = make_scheduler(cpus=4, max_idle_workers=0)
    start_idle(sched, 1)
    w1 = lease(sched, request())
    sched.lease_returned(w1, now=1.0)
    out = sched.request(request())
    assert out.grants == [] and len(out.start) == 1 and out.start[0] != w1


def test_worker_dying_while_asked_is_forgotten(make_scheduler):
    sched = make_scheduler(cpus=4, max_idle_workers=0)
    start_idle(sched, 1)
    w1 = lease(sched, request())
    sched.lease_returned(w1, now=1.0)
    dead, out = sched.worker_died(w1)
    assert dead.state == DEAD and w1 not in sched.workers
    assert sched.reap_answer(w1, may_exit=True, now=1.1).stop == []


def test_usage_counts_workers_by_state(make_scheduler):
    sched = make_scheduler(cpus=2)
    start_idle(sched, 2)
    lease(sched, request())
    usage = sched.usage()
    assert usage["workers"] == {IDLE: 1, LEASED: 1}
    assert usage["available"] == {"CPU": 1.0}


def test_lease_returned_while_blocked_gives_back_custom_resources(make_scheduler):
    sched = make_scheduler(cpus=1, disk=1)
    start_idle(sched, 1)
    worker = lease(sched, request(cpus=1, disk=1))
    sched.worker_blocked(worker)
    sched.lease_returned(worker)
    assert sched.available == {"CPU": 1.0, "disk": 1.0}


def test_a_queued_request_recalls_only_leases_holding_what_it_needs(make_scheduler):
    """Many owners holding zero-CPU leases are not woken each time a CPU request queues."""
    sched = make_scheduler(cpus=1)
    start_idle(sched, 3)
    lease(sched, request(OWNER_A))
    for k in range(2):
        lease(sched, request(f"tcp://light-{k}", cpus=0))
    out = sched.request(request(OWNER_B))
    assert out.recall == {OWNER_A}
    sched.validate_state()


def test_an_owner_is_not_recalled_for_its_own_requests_of_its_leases_kind(make_scheduler):
    """Giving back its lease would only get it the same lease again (a churn per task after a
    burst left its requests queued); a request of another owner, or of another kind (an actor,
    other resources), still asks the lease back."""
    sched = make_scheduler(cpus=1, disk=1)
    start_idle(sched, 1)
    lease(sched, request(OWNER_A))
    out = sched.request(request(OWNER_A))
    assert out.grants == [] and out.recall == set()
    assert sched.request(request(OWNER_A, for_actor=True)).recall == {OWNER_A}
    sched.pending.clear()
    assert sched.request(request(OWNER_A, disk=1)).recall == {OWNER_A}
    sched.pending.clear()
    sched.request(request(OWNER_A))
    assert sched.request(request(OWNER_B)).recall == {OWNER_A}
    sched.validate_state()


# ---- random event sequences: the invariants hold after every step ------------------------------
OWNERS = [OWNER_A, OWNER_B]


@pytest.mark.parametrize("seed", range(60))
def test_random_event_sequences_keep_the_invariants(seed):
    rng = random.Random(seed)
    ids = (f"w{i}".encode() for i in itertools.count())
    sched = Checked(LeaseScheduler({"CPU": 2.0}, lambda: next(ids), max_idle_workers=1,
                                   recheck_period=1.0, query_timeout=2.0))
    now = 0.0
    for _ in range(rng.randint(5, 60)):
        now += rng.choice([0.0, 0.1, 0.5, 1.5])
        by_state: dict[str, list] = {}
        for w in sched.workers.values():
            by_state.setdefault(w.state, []).append(w)
        choices = ["request", "tick", "owner_died"]
        choices += ["ready"] * bool(by_state.get(STARTING))
        choices += ["return", "block", "unblock", "die"] * bool(by_state.get(LEASED))
        choices += ["answer", "die"] * bool(by_state.get(REAP_QUERIED))
        choices += ["cancel"] * bool(sched.pending)
        event = rng.choice(choices)
        if event == "request":
            sched.request(request(rng.choice(OWNERS), cpus=rng.choice([0, 1, 2]), for_actor=rng.random() < 0.2))
        elif event == "tick":
            sched.tick(now)
        elif event == "owner_died":
            sched.owner_died(rng.choice(OWNERS))
        elif event == "ready":
            w = rng.choice(by_state[STARTING])
            sched.worker_ready(w.worker_id, f"tcp://{w.worker_id.decode()}", 1)
        elif event == "cancel":
            req = rng.choice(list(sched.pending))
            sched.cancel(req.owner_addr, req.request_id)
        elif event == "answer":
            w = rng.choice(by_state[REAP_QUERIED])
            out = sched.reap_answer(w.worker_id, rng.random() < 0.5, now)
            assert all(sched.workers[s].state == DEAD for s in out.stop)
        else:
            states = [LEASED, REAP_QUERIED] if event == "die" else [LEASED]
            w = rng.choice([w for s in states for w in by_state.get(s, [])])
            if event == "return":
                out = sched.lease_returned(w.worker_id, now)
                assert not out.stop, "a worker is stopped without being asked"
            elif event == "block":
                sched.worker_blocked(w.worker_id)
            elif event == "unblock":
                sched.worker_unblocked(w.worker_id)
            else:
                sched.worker_died(w.worker_id)


def test_retired_worker_is_asked_to_exit_at_once_even_under_the_pool_limit(make_scheduler):
    sched = make_scheduler(cpus=4, max_idle_workers=4)
    start_idle(sched, 1)
    w1 = lease(sched, request())
    out = sched.lease_returned(w1, now=1.0, retire=True)  # it ran its function's max_calls
    assert out.reap_query == [w1]
    assert sched.workers[w1].state == REAP_QUERIED
    assert sched.request(request()).grants == []  # not leased again while asked
    assert sched.reap_answer(w1, may_exit=True, now=1.1).stop == [w1]
    sched.validate_state()


def test_retired_worker_that_owns_objects_is_never_leased_and_asked_again_later(make_scheduler):
    sched = make_scheduler(cpus=4, max_idle_workers=4)
    start_idle(sched, 1)
    w1 = lease(sched, request())
    sched.lease_returned(w1, now=1.0, retire=True)
    out = sched.reap_answer(w1, may_exit=False, now=1.1)  # it owns objects in use
    assert out.stop == [] and w1 not in sched.idle
    sched.validate_state()
    assert all(w is not sched.workers[w1] for _, w in sched.request(request()).grants)
    assert sched.tick(now=5.0).reap_query == []
    assert sched.tick(now=6.2).reap_query == [w1]  # recheck_period 5 s
    assert sched.reap_answer(w1, may_exit=True, now=6.3).stop == [w1]
    sched.validate_state()


def test_idle_workers_over_the_limit_are_reaped_only_after_the_grace_period():
    ids = (f"g{i}".encode() for i in itertools.count())
    sched = Checked(LeaseScheduler({"CPU": 4.0}, lambda: next(ids), max_idle_workers=1, idle_grace=10.0))
    workers = [lease(sched, request(cpus=1)) for _ in range(3)]
    for worker_id in workers:
        out = sched.lease_returned(worker_id, now=100.0)
        assert out.reap_query == []  # a burst coming back: kept for now
    assert sorted(sched.idle) == sorted(workers)
    assert sched.tick(105.0).reap_query == []
    out = sched.tick(110.5)  # idle for the grace period: the pool goes back to its limit
    assert len(out.reap_query) == 2 and len(sched.idle) == 1


def test_an_owner_is_asked_for_its_leases_again_only_after_its_recall_lapses(make_scheduler):
    sched = make_scheduler()
    owners = [OWNER_A, OWNER_B]
    assert sched.due_recalls(owners, 10.0) == owners
    assert sched.due_recalls(owners, 10.0 + RECALL_REPEAT_S / 2) == []  # still returning leases
    assert sched.due_recalls([OWNER_A], 10.0 + 1.01 * RECALL_REPEAT_S) == [OWNER_A]
    assert RECALL_REPEAT_S < RECALL_HOLDS_S  # asked again before the owner stops returning
    sched.owner_died(OWNER_A)
    assert sched.due_recalls([OWNER_A], 10.0 + 1.01 * RECALL_REPEAT_S) == [OWNER_A]  # a new process
    sched.validate_state()


def test_recall_times_of_owners_long_gone_are_forgotten(make_scheduler):
    sched = make_scheduler()
    for i in range(500):
        sched.due_recalls([f"tcp://owner-{i}"], float(i))
    assert len(sched.recalled_at) < 100
