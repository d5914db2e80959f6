"""The timeline of a two-node run holds more than task spans: the argument fetch of a task
whose argument lives on the other node, that object's transfer on the pulling node's daemon,
the owner's lease waits, and a retry as an instant event."""

import numpy as np
import pytest
from conftest import add_node_ready
from ownrun import engine
from ownrun.engine.ids import task_id_of


@engine.remote(num_cpus=0, resources={"far": 1})
def total(array):
    return float(array.sum())


@engine.remote(max_retries=1, retry_exceptions=True)
def flaky(marker_ref):
    from ownrun.engine import kv

    if kv.get(b"timeline-flaky") is None:
        kv.put(b"timeline-flaky", b"1")
        raise RuntimeError("first attempt fails")
    return "ok"


@pytest.fixture
def two_nodes():
    assert not engine.is_initialized(), "this test starts its own cluster"
    engine.init(num_cpus=1, node_death_timeout=2.0)
    try:
        yield add_node_ready(num_cpus=1, resources={"far": 1})
    finally:
        engine.shutdown()


def test_timeline_has_argument_fetches_transfers_lease_waits_and_retries(two_nodes, tmp_path):
    array = engine.put(np.ones(1_000_000))  # 8 MB in the driver's node's store
    ref = total.remote(array)
    assert engine.get(ref, timeout=60) == 1_000_000.0
    retried = flaky.remote(None)
    assert engine.get(retried, timeout=60) == "ok"

    trace = engine.timeline(str(tmp_path / "trace.json"))
    events = trace["traceEvents"]
    labels = {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M"}
    oid = array.id.hex()
    (task,) = [e for e in events if e.get("cat") == "task" and e["args"]["task_id"] == task_id_of(ref.id).hex()]
    (fetch,) = [e for e in events if e.get("cat") == "fetch" and e["args"]["object_id"] == oid]
    assert fetch["pid"] == task["pid"] and task["ts"] <= fetch["ts"] <= task["ts"] + task["dur"]
    assert fetch["args"]["bytes"] >= 8_000_000 and not fetch["args"]["error"]
    pulls = [e for e in events if e.get("cat") == "transfer" and e["ph"] == "b" and e["args"]["object_id"] == oid]
    assert len(pulls) == 1 and two_nodes in labels[pulls[0]["pid"]]
    assert "daemon" in labels[pulls[0]["pid"]]
    leases = [e for e in events if e.get("cat") == "lease" and e["ph"] == "b"]
    assert leases and all("driver" in labels[e["pid"]] for e in leases)
    assert any(e["args"]["node"] == two_nodes for e in leases)
    retries = [e for e in events if e.get("cat") == "retry" and e["args"]["task_id"] == task_id_of(retried.id).hex()]
    assert len(retries) == 1 and "driver" in labels[retries[0]["pid"]]
