"""Submitter with fake push / lease callables: leases per shape, pipelining, idle returns."""

from __future__ import annotations

import collections
from types import SimpleNamespace

import pytest
from ownrun.engine.ownership.submitter import Submitter

CPU1 = (("CPU", 1.0),)
CPU2 = (("CPU", 2.0),)


class Fakes:
    """Records every call the submitter makes to the outside world."""

    def __init__(self):
        self.pushed: list[tuple[bytes, bytes]] = []  # (task_id, worker_id)
        self.requested: list[tuple[int, tuple]] = []  # (request_id, shape)
        self.returned: list[bytes] = []
        self.returned_to: list[str] = []  # the daemon each lease went back to
        self.cancelled: list[int] = []
        self.retired: list[bool] = []  # per returned lease: its worker is to be retired (max_calls)

    def push(self, entry, lease) -> None:
        self.pushed.append((entry.task_id, lease.worker_id))

    def request_lease(self, request_id, shape, resources, daemon=None, actor_options=None) -> None:
        assert dict(shape) == resources
        self.requested.append((request_id, shape))

    def return_lease(self, worker_id, daemon, retire=False) -> None:
        self.returned.append(worker_id)
        self.returned_to.append(daemon)
        self.retired.append(retire)

    def cancel_request(self, request_id) -> None:
        self.cancelled.append(request_id)


@pytest.fixture
def fakes():
    return Fakes()


@pytest.fixture
def submitter(fakes):
    return Submitter(fakes.push, fakes.request_lease, fakes.return_lease, fakes.cancel_request,
                     max_in_flight=2, max_lease_requests=3)


def task(i: int):
    return SimpleNamespace(task_id=f"t{i}".encode(), fn_id="f", extra=None)


def enqueue(sub: Submitter, *indices: int, shape=CPU1):
    for i in indices:
        sub.enqueue(task(i), shape, dict(shape))


def grant(sub: Submitter, fakes: Fakes, index: int, worker: bytes, now: float = 0.0,
          daemon: str = "tcp://daemon0"):
    request_id, _ = fakes.requested[index]
    return sub.lease_granted(request_id, worker, f"tcp://{worker.decode()}", "node0", daemon, now)


def finish(sub: Submitter, worker: bytes, task_id: bytes, now: float) -> None:
    """A task replied and the caller had nothing to store: the lease is settled at once."""
    lease = sub.task_replied(worker, task_id, now)
    if lease is not None:
        sub.settle(lease, now)


def test_first_task_requests_a_lease_and_is_pushed_once_granted(submitter, fakes):
    enqueue(submitter, 1)
    assert fakes.pushed == []
    assert [shape for _, shape in fakes.requested] == [CPU1]
    lease = grant(submitter, fakes, 0, b"w1")
    assert lease is not None and lease.worker_id == b"w1"
    assert fakes.pushed == [(b"t1", b"w1")]
    assert submitter.num_leases() == 1


def test_lease_requests_grow_with_the_queue_up_to_the_limit(submitter, fakes):
    enqueue(submitter, 1, 2, 3)  # 3 tasks, 2 per worker -> 2 leases wanted
    assert len(fakes.requested) == 2
    enqueue(submitter, *range(4, 20))  # many more -> capped at max_lease_requests
    assert len(fakes.requested) == 3


def test_tasks_are_pipelined_up_to_max_in_flight_per_worker(submitter, fakes):
    enqueue(submitter, 1, 2, 3, 4, 5)
    grant(submitter, fakes, 0, b"w1")
    assert fakes.pushed == [(b"t1", b"w1"), (b"t2", b"w1")]
    finish(submitter, b"w1", b"t1", now=1.0)
    assert fakes.pushed[-1] == (b"t3", b"w1")
    grant(submitter, fakes, 1, b"w2")
    assert fakes.pushed[-2:] == [(b"t4", b"w2"), (b"t5", b"w2")]


def test_ready_tasks_go_to_the_least_loaded_lease(submitter, fakes):
    enqueue(submitter, 1, 2, 3)
    grant(submitter, fakes, 0, b"w1")  # takes t1, t2
    grant(submitter, fakes, 1, b"w2")  # takes t3
    enqueue(submitter, 4)
    assert fakes.pushed[-1] == (b"t4", b"w2")


def test_a_reply_frees_its_slot_on_the_lease_that_ran_it(submitter, fakes):
    enqueue(submitter, 1)
    grant(submitter, fakes, 0, b"w1")
    lease = submitter.task_replied(b"w1", b"t1", now=1.0)
    assert lease.worker_id == b"w1" and b"t1" not in lease.in_flight and lease.idle_since == 1.0
    assert submitter.task_replied(b"unknown", b"t1", now=1.0) is None


def test_each_resource_shape_gets_its_own_leases(submitter, fakes):
    enqueue(submitter, 1, shape=CPU1)
    enqueue(submitter, 2, shape=CPU2)
    assert [shape for _, shape in fakes.requested] == [CPU1, CPU2]
    grant(submitter, fakes, 1, b"big")
    assert fakes.pushed == [(b"t2", b"big")]
    grant(submitter, fakes, 0, b"small")
    assert fakes.pushed[-1] == (b"t1", b"small")


def test_idle_lease_is_kept_for_reuse_then_returned_after_the_timeout(submitter, fakes):
    enqueue(submitter, 1)
    grant(submitter, fakes, 0, b"w1", now=0.0)
    finish(submitter, b"w1", b"t1", now=10.0)
    submitter.return_idle(now=10.5, idle_timeout=1.0)
    assert fakes.returned == []
    enqueue(submitter, 2)  # reused without a new lease request
    assert fakes.pushed[-1] == (b"t2", b"w1")
    assert len(fakes.requested) == 1
    finish(submitter, b"w1", b"t2", now=11.0)
    submitter.return_idle(now=12.0, idle_timeout=1.0)
    assert fakes.returned == [b"w1"]
    assert submitter.num_leases() == 0


def test_lease_goes_back_to_the_daemon_that_granted_it(submitter, fakes):
    enqueue(submitter, 1, 2, 3)
    grant(submitter, fakes, 0, b"w1", daemon="tcp://daemon0")
    grant(submitter, fakes, 1, b"w2", daemon="tcp://daemon1")  # spilled back to another node
    for worker, task_id in ((b"w1", b"t1"), (b"w1", b"t2"), (b"w2", b"t3")):
        finish(submitter, worker, task_id, now=1.0)
    submitter.return_idle(now=5.0, idle_timeout=1.0)
    assert sorted(zip(fakes.returned, fakes.returned_to, strict=True)) == [
        (b"w1", "tcp://daemon0"), (b"w2", "tcp://daemon1")]


def test_busy_lease_is_not_returned(submitter, fakes):
    enqueue(submitter, 1)
    grant(submitter, fakes, 0, b"w1", now=0.0)
    submitter.return_idle(now=100.0, idle_timeout=0.0)
    assert fakes.returned == []


def test_recall_returns_every_idle_lease(submitter, fakes):
    enqueue(submitter, 1, 2, 3)
    grant(submitter, fakes, 0, b"w1")
    grant(submitter, fakes, 1, b"w2")
    finish(submitter, b"w2", b"t3", now=5.0)
    submitter.return_idle(now=5.0, idle_timeout=0.0)  # RECALL_LEASES
    assert fakes.returned == [b"w2"]
    assert submitter.num_leases() == 1


def test_outstanding_lease_requests_are_cancelled_once_the_queue_drains(submitter, fakes):
    enqueue(submitter, 1, 2, 3)
    assert len(fakes.requested) == 2
    grant(submitter, fakes, 0, b"w1")  # takes t1, t2
    finish(submitter, b"w1", b"t1", now=1.0)  # t3 goes to w1 as well
    submitter.return_idle(now=1.0, idle_timeout=1.0)
    assert fakes.cancelled == [fakes.requested[1][0]]
    # A grant for the cancelled request arriving late is handed straight back.
    assert grant(submitter, fakes, 1, b"late") is None
    assert fakes.returned == [b"late"]


def test_worker_died_returns_its_in_flight_tasks_and_drops_the_lease(submitter, fakes):
    enqueue(submitter, 1, 2)
    grant(submitter, fakes, 0, b"w1")
    lost = submitter.worker_died(b"w1")
    assert sorted(e.task_id for e in lost) == [b"t1", b"t2"]
    assert submitter.num_leases() == 0
    assert submitter.worker_died(b"w1") == []
    # Re-enqueued (a retry) it asks for a new lease.
    for entry in lost:
        submitter.enqueue(entry, CPU1, dict(CPU1))
    assert len(fakes.requested) == 2


def test_queued_task_can_be_removed_and_in_flight_task_found(submitter, fakes):
    enqueue(submitter, 1, 2, 3)
    grant(submitter, fakes, 0, b"w1")
    assert submitter.remove_queued(b"t3").task_id == b"t3"
    assert submitter.remove_queued(b"t3") is None
    assert submitter.remove_queued(b"t1") is None  # in flight, not queued
    assert submitter.find_in_flight(b"t1").worker_id == b"w1"
    assert submitter.find_in_flight(b"t3") is None


def test_tasks_pushed_in_submission_order_on_one_lease(fakes):
    sub = Submitter(fakes.push, fakes.request_lease, fakes.return_lease, fakes.cancel_request,
                    max_in_flight=8)
    for i in range(20):
        sub.enqueue(task(i), CPU1, dict(CPU1))
    grant(sub, fakes, 0, b"w1")
    for i in range(20):
        finish(sub, b"w1", f"t{i}".encode(), now=float(i))
    assert [t for t, _ in fakes.pushed] == [f"t{i}".encode() for i in range(20)]


def test_recall_keeps_idle_leases_of_no_resources(submitter, fakes):
    """A lease of no CPU never makes a waiting request wait: recalling it only churns."""
    enqueue(submitter, 1)
    enqueue(submitter, 2, shape=())
    grant(submitter, fakes, 0, b"cpu")
    grant(submitter, fakes, 1, b"zero")
    submitter.recall(now=0.5, hold_s=1.0)
    finish(submitter, b"zero", b"t2", now=1.0)
    assert fakes.returned == []  # finished while recalled, but holds nothing
    finish(submitter, b"cpu", b"t1", now=1.0)
    assert fakes.returned == [b"cpu"]
    submitter.return_idle(now=2.0, idle_timeout=0.0, recall=True)
    assert fakes.returned == [b"cpu"] and submitter.num_leases() == 1
    submitter.return_idle(now=2.0, idle_timeout=0.0)  # the idle timeout still returns it
    assert fakes.returned == [b"cpu", b"zero"]


def test_next_idle_expiry_is_when_the_first_idle_lease_is_due_back(submitter, fakes):
    assert submitter.next_idle_expiry(1.0) is None  # no lease
    enqueue(submitter, 1)
    grant(submitter, fakes, 0, b"w1", now=0.0)
    assert submitter.next_idle_expiry(1.0) is None  # busy: nothing is due
    finish(submitter, b"w1", b"t1", now=5.0)
    assert submitter.next_idle_expiry(1.0) == 6.0
    enqueue(submitter, 2)  # reused: busy again, nothing due
    assert submitter.next_idle_expiry(1.0) is None
    finish(submitter, b"w1", b"t2", now=7.5)
    assert submitter.next_idle_expiry(1.0) == 8.5


def test_max_calls_spends_the_lease_and_retires_its_worker_when_the_tasks_replied(fakes):
    sub = Submitter(fakes.push, fakes.request_lease, fakes.return_lease, fakes.cancel_request,
                    max_in_flight=4, max_lease_requests=2)
    entries = [SimpleNamespace(task_id=f"t{i}".encode(), fn_id="f", extra={"max_calls": 2}) for i in range(3)]
    for entry in entries:
        sub.enqueue(entry, CPU1, dict(CPU1))
    grant(sub, fakes, 0, b"w1")
    assert [p for p in fakes.pushed] == [(b"t0", b"w1"), (b"t1", b"w1")]  # 2 calls, then spent
    finish(sub, b"w1", b"t0", now=1.0)
    assert fakes.returned == []  # t1 still runs there
    finish(sub, b"w1", b"t1", now=1.0)
    assert fakes.returned == [b"w1"] and fakes.retired == [True]
    grant(sub, fakes, 1, b"w2")  # the third call on a fresh worker
    assert fakes.pushed[-1] == (b"t2", b"w2")


def test_a_burst_beyond_leases_and_requests_waits_then_goes_out_in_order(submitter, fakes):
    enqueue(submitter, *range(20))  # leases full and every request out: the rest only queue
    assert len(fakes.requested) == 3 and not fakes.pushed
    grant(submitter, fakes, 0, b"w1")
    assert [t for t, _ in fakes.pushed] == [b"t0", b"t1"]
    assert len(fakes.requested) == 4  # the granted request was replaced
    enqueue(submitter, 20)
    assert len(fakes.pushed) == 2 and len(fakes.requested) == 4  # still no room, no more requests
    for i in range(2, 21):
        finished = fakes.pushed[i - 2][0]
        finish(submitter, b"w1", finished, now=float(i))
        assert fakes.pushed[-1][0] == f"t{i}".encode()
    assert [t for t, _ in fakes.pushed] == [f"t{i}".encode() for i in range(21)]


def test_a_function_with_a_different_depth_is_held_to_its_own_limit(fakes):
    depths = {"short": 3, "long": 1}
    sub = Submitter(fakes.push, fakes.request_lease, fakes.return_lease, fakes.cancel_request,
                    max_in_flight=3, max_lease_requests=1, depth=lambda entry: depths[entry.fn_id])
    for i, fn in enumerate(["short", "short", "long", "long"]):
        sub.enqueue(SimpleNamespace(task_id=f"t{i}".encode(), fn_id=fn, extra=None), CPU1, dict(CPU1))
    grant(sub, fakes, 0, b"w1")
    # t2 (depth 1) waits for an empty worker: with two long tasks waiting, more leases pay off
    assert [t for t, _ in fakes.pushed] == [b"t0", b"t1"]


def _alternating_submitter(fakes, max_in_flight=8):
    """An owner whose `flow` is long (depth 1) and whose `cumsum` is short (the video app)."""
    depths = {"cumsum": max_in_flight, "flow": 1}
    return Submitter(fakes.push, fakes.request_lease, fakes.return_lease, fakes.cancel_request,
                     max_in_flight=max_in_flight, max_lease_requests=4,
                     depth=lambda entry: depths[entry.fn_id])


def _entry(name: str, fn: str):
    return SimpleNamespace(task_id=name.encode(), fn_id=fn, extra=None)


def test_a_long_task_waits_behind_short_ones_instead_of_taking_a_second_lease(fakes):
    sub = _alternating_submitter(fakes)
    sub.enqueue(_entry("c0", "cumsum"), CPU1, dict(CPU1))
    grant(sub, fakes, 0, b"w1")
    for frame in range(1, 50):  # a short task in flight when each long one becomes ready
        sub.enqueue(_entry(f"f{frame}", "flow"), CPU1, dict(CPU1))
        finish(sub, b"w1", f"c{frame - 1}".encode(), float(frame))
        sub.enqueue(_entry(f"c{frame}", "cumsum"), CPU1, dict(CPU1))
        finish(sub, b"w1", f"f{frame}".encode(), float(frame))
    assert len(fakes.requested) == 1 and fakes.returned == []  # one lease for the whole run
    assert {worker for _, worker in fakes.pushed} == {b"w1"}
    assert sub.queues[CPU1].ready == collections.deque()


def test_long_tasks_still_spread_over_leases_when_several_wait(fakes):
    sub = _alternating_submitter(fakes)
    sub.enqueue(_entry("c0", "cumsum"), CPU1, dict(CPU1))
    grant(sub, fakes, 0, b"w1")
    sub.enqueue(_entry("f1", "flow"), CPU1, dict(CPU1))  # behind c0
    sub.enqueue(_entry("f2", "flow"), CPU1, dict(CPU1))  # not behind f1: a second lease
    assert [t for t, _ in fakes.pushed] == [b"c0", b"f1"]
    assert len(fakes.requested) == 2
    grant(sub, fakes, 1, b"w2")
    assert fakes.pushed[-1] == (b"f2", b"w2")


def test_a_long_task_never_waits_behind_an_unmeasured_one(fakes):
    depths = {"new": 1, "flow": 1}  # unmeasured functions count as long
    sub = Submitter(fakes.push, fakes.request_lease, fakes.return_lease, fakes.cancel_request,
                    max_in_flight=8, max_lease_requests=4, depth=lambda entry: depths[entry.fn_id])
    sub.enqueue(_entry("n0", "new"), CPU1, dict(CPU1))
    grant(sub, fakes, 0, b"w1")
    sub.enqueue(_entry("f1", "flow"), CPU1, dict(CPU1))
    assert [t for t, _ in fakes.pushed] == [b"n0"] and len(fakes.requested) == 2


def test_a_recall_holds_for_its_window_then_idle_leases_are_kept_again(submitter, fakes):
    """The window is a deadline checked when a task finishes: no timer has to end it."""
    enqueue(submitter, 1)
    grant(submitter, fakes, 0, b"w1")
    submitter.recall(now=1.0, hold_s=0.5)
    assert fakes.returned == []  # busy: it goes back once idle
    finish(submitter, b"w1", b"t1", now=1.4)
    assert fakes.returned == [b"w1"]
    enqueue(submitter, 2)
    grant(submitter, fakes, 1, b"w2")
    finish(submitter, b"w2", b"t2", now=1.6)
    assert fakes.returned == [b"w1"] and submitter.num_leases() == 1  # kept for reuse


def test_a_replied_lease_takes_the_task_made_ready_before_it_is_settled(submitter, fakes):
    """`task_replied`, then the reply's values make a task ready, then `settle`: a recalled
    owner's lease runs that task instead of going back (what the task manager does)."""
    enqueue(submitter, 1)
    grant(submitter, fakes, 0, b"w1")
    submitter.recall(now=1.0, hold_s=10.0)
    lease = submitter.task_replied(b"w1", b"t1", now=2.0)
    enqueue(submitter, 2)  # its argument was t1's result
    submitter.settle(lease, now=2.0)
    assert fakes.pushed[-1] == (b"t2", b"w1") and fakes.returned == [] and len(fakes.requested) == 1
    finish(submitter, b"w1", b"t2", now=3.0)
    assert fakes.returned == [b"w1"]  # nothing waits: back to the daemon
