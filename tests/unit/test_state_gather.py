"""The state API's walk asks a driver's processes at once: processes that exited meanwhile
(or are stuck) cost one deadline in all, not one each. Driven with fake callers (no sockets)."""

from __future__ import annotations

import threading

from ownrun.engine.rpc import protocol as P
from ownrun.engine.state import gather as g

HEAD = "ipc://head"


class FakeCaller:
    """Answers NODE_LIST with one node, NODE_STATS with `processes`, STATE_QUERY per process;
    with `parallel`, every STATE_QUERY waits until all of them are in flight."""

    head_address = HEAD

    def __init__(self, processes: list, gone: set, parallel: bool):
        self.parallel = parallel
        self.processes, self.gone = processes, gone
        self.all_asked = threading.Barrier(len(processes)) if parallel else None
        self.asked: list = []

    def __call__(self, address, kind, *fields):
        if kind == P.NODE_LIST:
            return {"n1": {"address": "ipc://daemon", "alive": True}}
        if kind == P.NODE_STATS:
            return {"processes": [[a, b"w" + a.encode(), 100 + i, "worker"] for i, a in enumerate(self.processes)]}
        assert kind == P.STATE_QUERY
        self.asked.append(address)
        if self.all_asked is not None:
            self.all_asked.wait(timeout=30)  # (broken if the queries were not in flight at once)
        if address in self.gone:
            raise TimeoutError(f"no answer from {address}")
        return {"tasks": [{"task_id": address}]}


def test_a_driver_asks_its_processes_at_once_and_lists_the_silent_ones_as_unreachable():
    processes = [f"ipc://p{i}" for i in range(12)]
    caller = FakeCaller(processes, gone={"ipc://p3", "ipc://p7"}, parallel=True)
    out = g.gather(caller, ("tasks",))
    assert sorted(caller.asked) == sorted(processes)
    assert [row["task_id"] for row in out.tasks] == [p for p in processes if p not in caller.gone]
    assert [u["address"] for u in out.unreachable] == ["ipc://p3", "ipc://p7"]
    assert "no answer" in out.unreachable[0]["error"]


def test_a_caller_that_is_not_thread_safe_asks_one_process_after_the_other_in_order():
    processes = [f"ipc://p{i}" for i in range(5)]
    caller = FakeCaller(processes, gone={"ipc://p1"}, parallel=False)
    out = g.gather(caller, ("tasks",))
    assert caller.asked == processes
    assert [u["address"] for u in out.unreachable] == ["ipc://p1"]
    assert len(out.tasks) == 4
