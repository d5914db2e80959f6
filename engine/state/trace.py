"""Chrome trace (Perfetto) JSON from the task spans the processes reported (gather.py).

Owns the trace's layout: one track (trace "process") per worker process, named by its
node, kind, pid and worker id; one complete event ("ph": "X") per task span with its name,
task id, owner and whether it failed, plus an instant event ("ph": "i") at the end of each
failed task; `otherData` says how many spans the ring buffers dropped. Pure; thread-safe.
"""

from __future__ import annotations


def chrome_trace(timelines: list[dict]) -> dict:
    events: list[dict] = []
    dropped = 0
    for track, process in enumerate(sorted(timelines, key=lambda p: (str(p.get("node_id")), p["pid"])), start=1):
        dropped += process.get("dropped", 0)
        label = f"{process.get('node_id')} {process.get('owner_kind')} pid {process['pid']} ({process['worker_id'][:8]})"
        events.append({"ph": "M", "name": "process_name", "pid": track, "tid": 0, "args": {"name": label}})
        for task_id, name, owner, start, end, failed in process["spans"]:
            args = {"task_id": task_id, "owner": owner, "failed": bool(failed)}
            events.append({"ph": "X", "cat": "task", "name": name, "pid": track, "tid": 0,
                           "ts": start * 1e6, "dur": max(0.0, end - start) * 1e6, "args": args})
            if failed:
                events.append({"ph": "i", "s": "t", "cat": "failure", "name": f"{name} failed", "pid": track,
                               "tid": 0, "ts": end * 1e6, "args": {"task_id": task_id}})
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"dropped_spans": dropped, "processes": len(timelines)}}
