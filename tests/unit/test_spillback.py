"""Spillback, driven with events and time by hand (no I/O); `validate_state()` after every step."""

from __future__ import annotations

import itertools

import pytest
from ownrun.engine.node.scheduler import LeaseRequest, LeaseScheduler
from ownrun.engine.node.spillback import Spillback

OWNER = "tcp://owner"
_request_ids = itertools.count(1)


class Checked:
    """A Spillback whose every method call is followed by `validate_state()`."""

    def __init__(self, policy: Spillback):
        self._policy = policy

    def __getattr__(self, name):
        value = getattr(self._policy, name)
        if not callable(value) or name == "validate_state":
            return value

        def checked(*args, **kwargs):
            result = value(*args, **kwargs)
            self._policy.validate_state()
            return result

        return checked


def node(address: str, cpus: float, free: float | None = None, alive: bool = True, **resources) -> dict:
    total = {"CPU": float(cpus), **resources}
    available = {"CPU": float(cpus if free is None else free), **resources}
    return {"address": address, "total": total, "available": available, "alive": alive}


@pytest.fixture
def make_policy():
    def make(cpus: float = 1, pooled: int = 0, **view) -> Spillback:
        ids = (f"w{i}".encode() for i in itertools.count())
        sched = LeaseScheduler({"CPU": float(cpus)}, lambda: next(ids), max_idle_workers=4)
        for worker_id in sched.prestart(pooled):
            sched.worker_ready(worker_id, f"tcp://{worker_id.decode()}", 1)
        policy = Spillback("here", sched, infeasible_timeout=3.0, spill_after=0.2)
        policy.view_changed({"here": node("tcp://here", cpus), **view}, now=0.0)
        policy.validate_state()
        return Checked(policy)

    return make


def request(cpus: float = 1, hops: int = 0, **resources) -> LeaseRequest:
    return LeaseRequest(OWNER, b"owner", next(_request_ids), {"CPU": float(cpus), **resources}, False, hops)


def default_actor() -> LeaseRequest:
    """An actor that asked for no resources: 1 CPU to place, 0 to run (Ray's default)."""
    return LeaseRequest(OWNER, b"owner", next(_request_ids), {}, True, 0, placement={"CPU": 1.0})


def test_default_actor_is_not_placed_on_a_node_without_cpus(make_policy):
    policy = make_policy(cpus=0, cpu_node=node("tcp://cpu-node", 1, free=0))
    out = policy.request(default_actor(), now=1.0)
    assert [target for _, target in out.spill] == ["tcp://cpu-node"] and not out.local.start


def test_default_actors_hold_no_cpu_on_a_node_with_cpus(make_policy):
    policy = make_policy(cpus=1)
    for _ in range(3):  # more actors than CPUs: placing needs one, running none
        out = policy.request(default_actor(), now=1.0)
        assert len(out.local.start) == 1 and not out.spill
    assert policy.scheduler.available["CPU"] == 1


def test_request_that_fits_here_is_granted_here(make_policy):
    policy = make_policy(cpus=2, pooled=1)
    req = request()
    out = policy.request(req, now=1.0)
    assert out.spill == [] and out.reject == []
    assert [(r, w.worker_id) for r, w in out.local.grants] == [(req, b"w0")]


def test_request_no_node_here_fits_goes_to_a_node_that_does(make_policy):
    policy = make_policy(cpus=1, big=node("tcp://big", 8, free=0))
    req = request(cpus=4)
    out = policy.request(req, now=1.0)
    assert out.spill == [(req, "tcp://big")]  # its total fits, even though it is busy now


def test_infeasible_request_waits_for_a_node_that_fits_to_join(make_policy):
    policy = make_policy(cpus=1)
    req = request(GPU=1)
    out = policy.request(req, now=1.0)
    assert out.spill == [] and out.reject == []
    assert policy.tick(now=2.0).reject == []
    view = dict(policy.view, gpu=node("tcp://gpu", 1, GPU=1))
    out = policy.view_changed(view, now=2.5)
    assert out.spill == [(req, "tcp://gpu")]
    assert policy.infeasible == []


def test_infeasible_request_is_rejected_after_its_deadline_naming_the_nodes(make_policy):
    policy = make_policy(cpus=1)
    req = request(GPU=1)
    policy.request(req, now=1.0)
    assert policy.tick(now=3.9).reject == []
    out = policy.tick(now=4.0)
    ((rejected, message),) = out.reject
    assert rejected is req
    assert "no node can satisfy resources" in message and "'here'" in message
    assert policy.infeasible == []


def test_busy_node_spills_to_the_node_with_most_free_cpus(make_policy):
    policy = make_policy(cpus=1, pooled=1, a=node("tcp://a", 4, free=1), b=node("tcp://b", 4, free=3))
    policy.request(request(), now=1.0)  # takes this node's only CPU
    req = request()
    out = policy.request(req, now=1.1)
    assert out.spill == [(req, "tcp://b")]


def test_request_spilled_here_is_not_spilled_again(make_policy):
    policy = make_policy(cpus=1, pooled=1, a=node("tcp://a", 4, free=4))
    policy.request(request(), now=1.0)
    req = request(hops=1)
    out = policy.request(req, now=1.1)
    assert out.spill == [] and list(policy.scheduler.pending) == [req]


def test_soft_affinity_waits_on_its_busy_node_and_goes_elsewhere_only_if_the_node_cannot_run_it(make_policy):
    """NodeAffinitySchedulingStrategy(soft=True), as in Ray: a busy node keeps the request
    (neither at once nor after `spill_after`); a node that cannot run it at all passes it on."""
    policy = make_policy(cpus=1, pooled=1, a=node("tcp://a", 4, free=4))
    policy.request(request(), now=1.0)  # takes this node's only CPU
    soft = request()
    soft.soft_affinity = True
    assert policy.request(soft, now=1.1).spill == []
    assert policy.tick(now=2.0).spill == []
    assert list(policy.scheduler.pending) == [soft]
    too_big = request(cpus=2)
    too_big.soft_affinity = True
    assert policy.request(too_big, now=2.1).spill == [(too_big, "tcp://a")]


def test_dead_node_is_not_a_target(make_policy):
    policy = make_policy(cpus=1, pooled=1, a=node("tcp://a", 4, free=4))
    policy.node_died("a")
    policy.request(request(), now=1.0)
    req = request()
    assert policy.request(req, now=1.1).spill == []
    assert list(policy.scheduler.pending) == [req]


def test_suspect_node_gets_no_new_leases_until_it_beats_again(make_policy):
    suspect = dict(node("tcp://a", 4, free=4), suspect=True)
    policy = make_policy(cpus=1, pooled=1, a=suspect, b=node("tcp://b", 4, free=1))
    policy.request(request(), now=1.0)  # takes this node's only CPU
    req = request()
    assert policy.request(req, now=1.1).spill == [(req, "tcp://b")]  # not to the suspect with more CPUs
    policy.view_changed(dict(policy.view, b=dict(node("tcp://b", 4, free=4), suspect=True)), now=1.2)
    waiting = request()
    assert policy.request(waiting, now=1.3).spill == []
    assert policy.tick(now=2.0).spill == []  # queued here, not spilled to a suspect
    policy.view_changed(dict(policy.view, a=node("tcp://a", 4, free=4)), now=2.1)  # a beats again
    assert policy.tick(now=2.2).spill == [(waiting, "tcp://a")]


def test_waiting_requests_spill_to_a_node_that_frees_up_without_overfilling_it(make_policy):
    policy = make_policy(cpus=1, pooled=1, a=node("tcp://a", 2, free=0))
    policy.request(request(), now=1.0)
    waiting = [request(hops=1) for _ in range(3)]
    for req in waiting:
        policy.request(req, now=1.0)
    assert policy.tick(now=1.5).spill == []  # no node has free CPUs
    view = dict(policy.view, a=node("tcp://a", 2, free=2))
    policy.view_changed(view, now=1.6)
    out = policy.tick(now=1.7)
    assert out.spill == [(waiting[0], "tcp://a"), (waiting[1], "tcp://a")]  # two free CPUs there
    assert list(policy.scheduler.pending) == [waiting[2]]


def test_requests_queued_only_briefly_are_not_spilled(make_policy):
    policy = make_policy(cpus=1, pooled=1, a=node("tcp://a", 2, free=2))
    policy.request(request(), now=1.0)
    req = request(hops=1)
    policy.request(req, now=1.0)
    assert policy.tick(now=1.1).spill == []
    assert policy.tick(now=1.3).spill == [(req, "tcp://a")]


def test_dead_owner_infeasible_requests_are_dropped(make_policy):
    policy = make_policy(cpus=1)
    policy.request(request(GPU=1), now=1.0)
    policy.owner_died(OWNER)
    assert policy.tick(now=10.0).reject == []


def test_by_default_an_infeasible_request_waits_for_good_and_its_shape_is_warned_about_once():
    ids = (f"w{i}".encode() for i in itertools.count())
    sched = LeaseScheduler({"CPU": 1.0}, lambda: next(ids), max_idle_workers=4)
    policy = Checked(Spillback("here", sched))
    policy.view_changed({"here": node("tcp://here", 1)}, now=0.0)
    first, second, other = request(GPU=1), request(GPU=1), request(TPU=2)
    ((warned, message),) = policy.request(first, now=1.0).warn
    assert warned is first and "{'CPU': 1.0, 'GPU': 1}" in message and "waits" in message
    assert policy.request(second, now=1.0).warn == []  # once per shape
    assert [r for r, _ in policy.request(other, now=1.0).warn] == [other]
    assert policy.tick(now=1e9).reject == [] and len(policy.infeasible) == 3
    out = policy.view_changed(dict(policy.view, gpu=node("tcp://gpu", 1, GPU=1)), now=1e9)
    assert [r for r, _ in out.spill] == [first, second]


def actor_request(cpus: float = 0, hops: int = 0, **resources) -> LeaseRequest:
    shape = {k: float(v) for k, v in {"CPU": cpus, **resources}.items() if v}
    return LeaseRequest(OWNER, b"owner", next(_request_ids), shape, True, hops)


def _placed(out, here_count: dict) -> None:
    for _req, address in out.spill:
        here_count[address] = here_count.get(address, 0) + 1
    if out.local.start:
        here_count["tcp://here"] = here_count.get("tcp://here", 0) + len(out.local.start)


def test_zero_cpu_actors_spread_evenly_over_the_live_nodes(make_policy):
    policy = make_policy(cpus=1, a=node("tcp://a", 1), b=node("tcp://b", 1))
    counts: dict = {}
    for _ in range(30):
        _placed(policy.request(actor_request(), now=1.0), counts)
    assert counts == {"tcp://here": 10, "tcp://a": 10, "tcp://b": 10}


def test_zero_cpu_actors_skip_dead_nodes_and_nodes_without_their_resources(make_policy):
    policy = make_policy(cpus=1, a=node("tcp://a", 1, W=8), b=node("tcp://b", 1, W=8), c=node("tcp://c", 1))
    policy.node_died("a")
    counts: dict = {}
    for _ in range(6):
        _placed(policy.request(actor_request(W=1), now=1.0), counts)
    assert counts == {"tcp://b": 6}  # not here (no W), not on dead a, not on c (no W)


def test_zero_cpu_actors_count_the_actors_already_here(make_policy):
    policy = make_policy(cpus=1, a=node("tcp://a", 1))
    counts: dict = {}
    for _ in range(2):  # two CPU actors here first: they count as actors of this node
        _placed(policy.request(actor_request(cpus=0.5), now=1.0), counts)
    assert counts == {"tcp://here": 2}
    for _ in range(4):
        _placed(policy.request(actor_request(), now=1.0), counts)
    assert counts == {"tcp://here": 3, "tcp://a": 3}


def test_actors_that_need_cpus_are_not_spread(make_policy):
    policy = make_policy(cpus=4, a=node("tcp://a", 4))
    for _ in range(3):
        out = policy.request(actor_request(cpus=1), now=1.0)
        assert out.spill == [] and len(out.local.start) == 1


def test_actor_spilled_here_is_not_spread_again(make_policy):
    policy = make_policy(cpus=1, a=node("tcp://a", 1))
    policy.request(actor_request(), now=1.0)
    out = policy.request(actor_request(hops=1), now=1.0)
    assert out.spill == [] and len(out.local.start) == 1


def test_actors_that_exited_do_not_tilt_later_placements_toward_this_node(make_policy):
    policy = make_policy(cpus=1, a=node("tcp://a", 1), b=node("tcp://b", 1))
    first: dict = {}
    for _ in range(30):
        out = policy.request(actor_request(), now=1.0)
        _placed(out, first)
        for worker_id in out.local.start:  # the local actors run, then exit
            policy.scheduler.worker_ready(worker_id, f"tcp://{worker_id.decode()}", 1)
            policy.scheduler.worker_died(worker_id)
    second: dict = {}
    for _ in range(30):
        _placed(policy.request(actor_request(), now=2.0), second)
    assert first == second == {"tcp://here": 10, "tcp://a": 10, "tcp://b": 10}


def test_a_dead_node_is_forgotten_by_the_actor_counts(make_policy):
    policy = make_policy(cpus=1, a=node("tcp://a", 1), b=node("tcp://b", 1))
    for _ in range(6):
        policy.request(actor_request(), now=1.0)
    policy.node_died("a")
    counts: dict = {}
    for _ in range(4):
        _placed(policy.request(actor_request(), now=2.0), counts)
    assert counts == {"tcp://here": 2, "tcp://b": 2}


def test_pinned_request_waits_here_while_busy_and_is_never_spilled(make_policy):
    policy = make_policy(cpus=1, pooled=1, other=node("tcp://other", 8))
    first, pinned = request(), request()
    pinned.pinned = True
    assert policy.request(first, now=1.0).local.grants  # takes the only CPU
    out = policy.request(pinned, now=1.0)
    assert out.spill == [] and out.reject == [] and not out.local.grants  # a busy node: waits here
    out = policy.tick(now=5.0)  # long past spill_after
    assert out.spill == [] and pinned in policy.scheduler.pending


def test_pinned_request_this_node_cannot_fit_is_rejected_naming_node_affinity(make_policy):
    policy = make_policy(cpus=1, big=node("tcp://big", 8))
    req = request(cpus=4)
    req.pinned = True
    out = policy.request(req, now=1.0)
    assert out.spill == [] and [r for r, _ in out.reject] == [req]
    assert "NodeAffinitySchedulingStrategy" in out.reject[0][1]
