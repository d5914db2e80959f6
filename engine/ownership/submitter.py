"""Normal-task submission: worker leases per resource shape and pipelined pushes (§3).

Owns, per resource shape, the queue of tasks whose arguments are resolved, the leases
granted to this owner by node daemons and how many tasks are in flight on each. Tasks are
pushed directly to leased workers, up to `max_in_flight` per worker (a long task one at a
time, or behind short tasks when it alone waits and no lease is free); more leases are
requested while the queue outgrows the leased capacity; idle leases are kept briefly for
reuse and returned when recalled (those holding resources) or after `idle_timeout`. A task
whose function has `max_calls` (in `entry.extra`) counts against its lease: once the lease
has been given that many tasks of the function it takes no more, and goes back to the daemon
as soon as they have replied, to be retired (Ray's `max_calls`: a fresh worker next time).

Does no I/O itself: pushing, requesting and returning leases are callables given by the
core worker. Not thread-safe: called with the core worker's state lock held.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class Lease:
    worker_id: bytes
    address: str
    node_id: str
    daemon: str  # the node daemon that granted the lease (it gets the lease back)
    shape: tuple
    in_flight: dict = field(default_factory=dict)  # task_id -> TaskEntry
    idle_since: float | None = None
    calls: dict | None = None  # fn_id -> tasks pushed, for functions with max_calls
    spent: bool = False  # a function reached its max_calls here: no more pushes; retire when idle


@dataclass(slots=True)
class ShapeQueue:
    shape: tuple  # the queue's key: resource shape and preferred node
    resources: dict
    daemon: str | None = None  # where to ask for leases first (the node holding the arguments)
    lease_options: dict | None = None  # {"pinned": True}: leases only from `daemon` (node affinity)
    ready: deque = field(default_factory=deque)
    leases: list = field(default_factory=list)
    lease_requests: set = field(default_factory=set)  # outstanding lease request ids


def _count_call(lease: Lease, fn_id: str, max_calls: int) -> None:
    calls = lease.calls
    if calls is None:
        calls = lease.calls = {}
    calls[fn_id] = calls.get(fn_id, 0) + 1
    if calls[fn_id] >= max_calls:
        lease.spent = True


def _holds_resources(queue: ShapeQueue) -> bool:
    return any(amount > 0 for amount in queue.resources.values())


class Submitter:
    """Lease bookkeeping and dispatch of ready tasks for one owner."""

    def __init__(self, push, request_lease, return_lease, cancel_lease_request,
                 max_in_flight: int = 8, max_lease_requests: int = 4, depth=None):
        self._push = push
        self._request_lease = request_lease
        self._return_lease = return_lease
        self._cancel_request = cancel_lease_request
        self.max_in_flight = max_in_flight
        self.max_lease_requests = max_lease_requests
        # How many tasks like `entry` may be in flight on one worker: pipelining pays for
        # short tasks only; a long task queued behind another would leave CPUs idle.
        self._depth = depth or (lambda entry: max_in_flight)
        self.queues: dict[tuple, ShapeQueue] = {}
        self.leases_by_worker: dict[bytes, Lease] = {}
        self._next_request = 0
        self.request_shapes: dict[int, tuple] = {}  # outstanding lease request -> shape
        # A daemon has requests waiting: until then, leases holding resources go back as soon
        # as idle (checked when a task finishes, so holding this needs no timer).
        self.recalled_until = float("-inf")

    def enqueue(self, entry, shape: tuple, resources: dict, daemon: str | None = None,
                lease_options: dict | None = None) -> None:
        queue = self.queues.get(shape)
        if queue is None:
            queue = self.queues[shape] = ShapeQueue(shape, resources, daemon, lease_options)
        ready = queue.ready
        ready.append(entry)
        if len(ready) > 1 and len(queue.lease_requests) >= self.max_lease_requests:
            # Tasks waited already, so the last dispatch left no lease room for the first of
            # them, and every lease request is out: dispatching again would do nothing (the
            # common case while a burst of tasks outruns the workers).
            return
        self.dispatch(queue)

    def dispatch(self, queue: ShapeQueue) -> None:
        """Pushes ready tasks to leases with room (the least loaded first), then asks for
        more leases if tasks still wait. Leaves no lease with room for the first ready task.
        `depth(entry)` depends on the entry's function only: asked again when it changes."""
        ready = queue.ready
        if not ready:
            return
        head = ready[0]
        fn_id = head.fn_id
        limit = self._depth(head)
        while True:
            best = None
            for lease in queue.leases:
                n = len(lease.in_flight)
                if n < limit and not lease.spent and (best is None or n < len(best.in_flight)):
                    best = lease
                    if n == 0:
                        break
            if best is None and limit == 1 and len(ready) == 1:  # (several waiting: more leases pay)
                best = self._behind_short_tasks(queue)
            if best is None:
                break
            entry = ready.popleft()
            best.in_flight[entry.task_id] = entry
            best.idle_since = None
            if entry.extra is not None and entry.extra.get("max_calls"):
                _count_call(best, entry.fn_id, entry.extra["max_calls"])
            self._push(entry, best)
            if not ready:
                return
            head = ready[0]
            if head.fn_id != fn_id:
                fn_id = head.fn_id
                limit = self._depth(head)
        if ready:
            wanted = min(self.max_lease_requests, -(-len(ready) // limit))
            while len(queue.lease_requests) < wanted:
                self._next_request += 1
                request_id = self._next_request
                queue.lease_requests.add(request_id)
                self.request_shapes[request_id] = queue.shape
                self._request_lease(request_id, queue.shape, queue.resources, queue.daemon,
                                    actor_options=queue.lease_options)

    def _behind_short_tasks(self, queue: ShapeQueue) -> Lease | None:
        """A lease running only short tasks (measured <= 1 ms each, so it is free again
        within a few ms), for a long task that found no free lease and is the only one
        waiting (with several waiting, more leases pay off): it waits that long
        instead of asking for another worker. An owner alternating a long task with short
        ones of the same shape (the video pipeline's flow, cumsum and smooth) otherwise took a
        second worker for most long tasks, only to hand it back and ask again (lease churn)."""
        for lease in queue.leases:
            n = len(lease.in_flight)
            if 0 < n < self.max_in_flight and not lease.spent \
                    and all(self._depth(entry) > 1 for entry in lease.in_flight.values()):
                return lease
        return None

    def lease_granted(self, request_id: int, worker_id: bytes, address: str,
                      node_id: str, daemon: str, now: float) -> Lease | None:
        shape = self.request_shapes.pop(request_id, None)
        queue = self.queues.get(shape)
        if queue is None or request_id not in queue.lease_requests:
            self._return_lease(worker_id, daemon)
            return None
        queue.lease_requests.discard(request_id)
        lease = Lease(worker_id, address, node_id, daemon, shape, idle_since=now)
        queue.leases.append(lease)
        self.leases_by_worker[worker_id] = lease
        self.dispatch(queue)
        return lease

    def task_replied(self, worker_id: bytes, task_id: bytes, now: float) -> Lease | None:
        """A pushed task replied: its lease has room again, for the tasks its results make ready
        (the caller stores them, then calls `settle`). Returns the lease (None if unknown).

        Deciding about the lease only after the results are stored is what lets an owner
        that is behind keep it: its next task of the shape (a video's next flow, waiting for
        this one's corners) is ready by then and goes to the same worker; decided before,
        a recalled owner gave the lease back and queued for a new one behind every other owner
        once per task, and under load fell further behind with each hand-over."""
        lease = self.leases_by_worker.get(worker_id)
        if lease is None:
            return None
        lease.in_flight.pop(task_id, None)
        if not lease.in_flight:
            lease.idle_since = now
        return lease

    def settle(self, lease: Lease, now: float) -> None:
        """After a reply was handled: tasks that wait go to `lease` (or others); idle, it goes back
        if spent (max_calls) or recalled and nothing of its shape waits."""
        if self.leases_by_worker.get(lease.worker_id) is not lease:
            return  # its worker died or the lease went back meanwhile
        queue = self.queues[lease.shape]
        if queue.ready:
            self.dispatch(queue)
        if not lease.in_flight:
            if lease.spent:  # (the dispatch above already asked for a lease to replace it)
                self._give_back(queue, lease, retire=True)
            elif now < self.recalled_until and not queue.ready and _holds_resources(queue):
                self._give_back(queue, lease)

    def _give_back(self, queue: ShapeQueue, lease: Lease, retire: bool = False) -> None:
        queue.leases.remove(lease)
        del self.leases_by_worker[lease.worker_id]
        self._return_lease(lease.worker_id, lease.daemon, retire=retire)

    def worker_died(self, worker_id: bytes) -> list:
        """Drops the lease on a dead worker. Returns the tasks that were in flight on it."""
        lease = self.leases_by_worker.pop(worker_id, None)
        if lease is None:
            return []
        queue = self.queues[lease.shape]
        queue.leases.remove(lease)
        return list(lease.in_flight.values())

    def recall(self, now: float, hold_s: float) -> None:
        """The daemon asks for leases back: idle ones holding resources go now, busy ones as
        their last task finishes, for `hold_s` (the daemon asks again if it still waits)."""
        self.recalled_until = now + hold_s
        self.return_idle(now, 0.0, recall=True)

    def return_idle(self, now: float, idle_timeout: float, recall: bool = False) -> None:
        """Returns leases idle for longer than `idle_timeout` (0 returns every idle lease).
        `recall` (the daemon asks for leases back): only leases holding resources, since a
        lease of none never makes a waiting request wait."""
        for queue in self.queues.values():
            if queue.ready or (recall and not _holds_resources(queue)):
                continue
            for lease in list(queue.leases):
                if lease.idle_since is not None and now - lease.idle_since >= idle_timeout:
                    self._give_back(queue, lease)
            if not queue.ready and queue.lease_requests:
                for request_id in queue.lease_requests:
                    self.request_shapes.pop(request_id, None)
                    self._cancel_request(request_id)
                queue.lease_requests.clear()

    def next_idle_expiry(self, idle_timeout: float) -> float | None:
        """When the first idle lease is due back under `idle_timeout` (None: none is idle)."""
        idle = [lease.idle_since for lease in self.leases_by_worker.values() if lease.idle_since is not None]
        return min(idle) + idle_timeout if idle else None

    def remove_queued(self, task_id: bytes):
        for queue in self.queues.values():
            for entry in queue.ready:
                if entry.task_id == task_id:
                    queue.ready.remove(entry)
                    return entry
        return None

    def find_in_flight(self, task_id: bytes) -> Lease | None:
        for lease in self.leases_by_worker.values():
            if task_id in lease.in_flight:
                return lease
        return None

    def num_leases(self) -> int:
        return len(self.leases_by_worker)
