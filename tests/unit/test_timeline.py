"""The timeline's ring buffer (engine/state/spans.py) and its Chrome trace (trace.py), by hand."""

from __future__ import annotations

import json

from ownrun.engine.state.spans import EventBuffer
from ownrun.engine.state.trace import chrome_trace


def _process(buffer: EventBuffer, kind: str = "worker", worker_id: str = "ab" * 8) -> dict:
    return {**buffer.snapshot(), "node_id": "node0", "owner_kind": kind, "worker_id": worker_id}


def test_ring_buffer_keeps_the_latest_events_and_counts_the_dropped():
    buffer = EventBuffer(size=3)
    for i in range(5):
        buffer.append(("task", bytes([i]) * 4, f"t{i}", "owner", 1.0, 2.0, False))
    snap = buffer.snapshot()
    assert [event[2] for event in snap["events"]] == ["t2", "t3", "t4"]
    assert snap["dropped"] == 2 and snap["capacity"] == 3
    trace = chrome_trace([_process(buffer)])
    assert trace["otherData"]["dropped_events"] == 2


def test_a_lease_wait_is_a_span_from_request_to_answer_and_a_respilled_request_keeps_its_start():
    buffer = EventBuffer(size=10)
    buffer.owner_event("lease_asked", 7, {"CPU": 1.0}, None)
    (first, _), = buffer.leases_waiting.values()
    buffer.owner_event("lease_asked", 7, {"CPU": 1.0}, None)  # spilled back: asked elsewhere
    buffer.owner_event("lease_answered", 7, "node1", None)
    buffer.owner_event("lease_answered", 8, "node1", None)  # never asked here: ignored
    (event,) = buffer.events
    assert event[:4] == ("lease", 7, "CPU=1", "node1") and event[4] == first and event[5] >= first
    assert not buffer.leases_waiting


def test_waiting_lease_requests_are_bounded():
    buffer = EventBuffer(size=2)
    for request_id in range(5):
        buffer.owner_event("lease_asked", request_id, {"CPU": 1.0}, None)
    assert list(buffer.leases_waiting) == [3, 4]


def test_trace_has_task_fetch_transfer_lease_retry_and_failure_events():
    worker, daemon, driver = EventBuffer(), EventBuffer(), EventBuffer()
    worker.append(("task", b"\x01" * 16, "f", "ipc://owner", 10.0, 11.0, False))
    worker.append(("fetch", b"\x02" * 20, "f", 4096, 10.1, 10.2, None))
    worker.append(("task", b"\x03" * 16, "g", "ipc://owner", 12.0, 13.0, True))
    daemon.append(("transfer", b"\x02" * 20, "ipc://daemon1", 4096, 9.0, 10.05, None))
    daemon.append(("transfer", b"\x04" * 20, "ipc://daemon1", 0, 9.0, 9.5, "the node died"))
    driver.owner_event("lease_asked", 1, {"CPU": 1.0}, None)
    driver.owner_event("lease_answered", 1, "node0", None)
    driver.owner_event("retry", b"\x03" * 16, "g", "worker died")
    driver.owner_event("failure", b"\x03" * 16, "g", "no retries left")
    trace = json.loads(json.dumps(chrome_trace([_process(worker), _process(daemon, "daemon", ""),
                                                _process(driver, "driver")])))
    by_cat: dict = {}
    for event in trace["traceEvents"]:
        by_cat.setdefault((event.get("cat"), event["ph"]), []).append(event)
    assert [e["name"] for e in by_cat["task", "X"]] == ["f", "g"]
    (fetch,) = by_cat["fetch", "X"]
    assert fetch["args"]["bytes"] == 4096 and fetch["dur"] > 0
    assert len(by_cat["transfer", "b"]) == len(by_cat["transfer", "e"]) == 2
    assert by_cat["lease", "b"][0]["name"] == "lease wait (CPU=1)" and len(by_cat["lease", "e"]) == 1
    assert [e["name"] for e in by_cat["retry", "i"]] == ["retry: g"]
    failures = [e["name"] for e in by_cat["failure", "i"]]
    assert "g failed" in failures and "failure: g" in failures and any("pull" in n for n in failures)
    labels = [e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M"]
    assert any(label.startswith("node0 daemon pid") and "(" not in label for label in labels)


def test_size_zero_records_nothing():
    buffer = EventBuffer(size=0)
    buffer.append(("task", b"\x01", "f", "owner", 1.0, 2.0, False))
    buffer.owner_event("lease_asked", 1, {"CPU": 1.0}, None)
    assert buffer.snapshot()["events"] == [] and not buffer.leases_waiting
