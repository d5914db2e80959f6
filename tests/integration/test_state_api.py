"""The state API against a known workload in an embedded cluster, asked from the driver."""

import pytest
from ownrun import engine
from ownrun.engine.ids import task_id_of
from ownrun.engine.util import state

pytestmark = pytest.mark.usefixtures("cluster")


@engine.remote
def square(x):
    return x * x


@engine.remote
def fails():
    raise ValueError("on purpose")


@engine.remote
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n


def test_tasks_actors_objects_of_a_known_workload():
    refs = [square.remote(i) for i in range(7)]
    assert engine.get(refs) == [i * i for i in range(7)]
    with pytest.raises(ValueError):
        engine.get(fails.remote())
    counter = Counter.remote()
    assert engine.get([counter.incr.remote() for _ in range(3)]) == [1, 2, 3]
    big = engine.put(b"x" * 300_000)

    summary = state.summarize_tasks()
    assert summary["square"] == {"done": 7, "total": 7}
    assert summary["fails"] == {"failed": 1, "total": 1}
    assert summary["Counter.incr"] == {"done": 3, "total": 3}
    assert summary["Counter.__init__"]["done"] == 1

    listing = state.list_tasks(filters=[("name", "=", "square")], limit=3)
    assert len(listing) == 3 and listing.total == 7 and listing.header == "3 of 7 tasks"
    assert all(row["state"] == "done" and row["node_id"] for row in listing)
    failed = state.list_tasks(filters=[("state", "=", "failed"), ("name", "=", "fails")])
    assert failed.total == 1 and failed[0]["type"] == "normal"

    actors = state.list_actors(filters=[("class_name", "=", "Counter")])
    assert actors.total == 1 and actors[0]["state"] == "ALIVE"

    objects = state.list_objects(filters=[("object_id", "=", big.id.hex())], detail=True)
    assert objects.total == 1
    assert objects[0]["where"] == "shared_memory" and objects[0]["pinned"] and objects[0]["size"] >= 300_000
    assert objects[0]["local_refs"] == 1 and objects[0]["callsite"] is None
    assert any(group["bytes"] >= 300_000 for group in state.memory())

    nodes = state.list_nodes()
    assert nodes.total == len(engine.nodes()) and all(node["alive"] for node in nodes)
    workers = state.list_workers(filters=[("kind", "=", "driver")])
    assert workers.total >= 1 and not workers.unreachable
    del counter, big


def test_timeline_is_a_chrome_trace_with_one_span_per_task(tmp_path):
    from ownrun.engine.state.spans import EVENTS

    before = engine.timeline()
    seen = {event["args"]["task_id"] for event in before["traceEvents"] if event.get("cat") == "task"}
    refs = [square.remote(100 + i) for i in range(9)]
    engine.get(refs)
    bad = fails.remote()
    with pytest.raises(ValueError):
        engine.get(bad)
    path = tmp_path / "trace.json"
    engine.timeline(str(path))
    import json

    trace = json.loads(path.read_text())
    spans = [event for event in trace["traceEvents"]
             if event.get("cat") == "task" and event["args"]["task_id"] not in seen]
    assert sorted(span["name"] for span in spans) == ["fails"] + ["square"] * 9
    assert {span["args"]["task_id"] for span in spans} == {task_id_of(ref.id).hex() for ref in refs} | {task_id_of(bad.id).hex()}
    assert all(span["dur"] >= 0 and span["ts"] > 0 for span in spans)
    assert [span["args"]["failed"] for span in spans if span["name"] == "fails"] == [True]
    names = {event["pid"]: event["args"]["name"] for event in trace["traceEvents"] if event["ph"] == "M"}
    assert all(span["pid"] in names for span in spans)
    assert trace["otherData"]["dropped_events"] == 0 and EVENTS.events.maxlen >= 1


def test_repeated_one_shot_queries_do_not_grow_the_open_sockets_of_the_cluster(cluster):
    import os

    from ownrun.engine.cluster import embedded, started

    local = embedded.current()
    pids = [local.procs[0].pid, *(proc.pid for proc in local.node_procs.values())]  # head, daemons

    def open_fds() -> list[int]:
        return [len(os.listdir(f"/proc/{pid}/fd")) for pid in pids]

    def query() -> None:  # as `ownrun list tasks` and `ownrun status` from another terminal
        assert state.list_tasks(address=cluster["address"]).total >= 0
        assert started.status(cluster["address"], None)["nodes"]

    for _ in range(3):
        query()
    before = open_fds()
    for _ in range(30):
        query()
    after = open_fds()
    assert all(b - a <= 2 for a, b in zip(before, after, strict=True)), (before, after)
