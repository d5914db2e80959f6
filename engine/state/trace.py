"""Chrome trace (Perfetto) JSON from the timeline events the processes reported (gather.py).

Owns the trace's layout: one track (trace "process") per process — each worker and driver,
and each node daemon — named by its node, kind, pid and worker id. On a track:

* a complete event ("ph": "X", tid 0) per task span (name, task id, owner, failed) and per
  argument fetch (inside the span of its task), plus an instant event ("ph": "i") at the
  end of each failed task or fetch;
* an async span ("ph": "b"/"e", its own row in Perfetto) per lease wait, on the owner that
  waited (from the request to the grant or answer), and per object transfer, on the node
  daemon that pulled it;
* instant events for the owner's retries and failures.

`otherData` says how many events the ring buffers dropped. Pure; thread-safe.
"""

from __future__ import annotations


def chrome_trace(timelines: list[dict]) -> dict:
    events: list[dict] = []
    dropped = 0
    for track, process in enumerate(sorted(timelines, key=lambda p: (str(p.get("node_id")), p["pid"])), start=1):
        dropped += process.get("dropped", 0)
        worker = process.get("worker_id") or ""
        label = f"{process.get('node_id')} {process.get('owner_kind')} pid {process['pid']}"
        label += f" ({worker[:8]})" if worker else ""
        events.append({"ph": "M", "name": "process_name", "pid": track, "tid": 0, "args": {"name": label}})
        for record in process["events"]:
            events.extend(_events(track, *record))
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"dropped_events": dropped, "processes": len(timelines)}}


def _us(seconds: float) -> float:
    return seconds * 1e6


def _events(track: int, category: str, key, name, detail, start: float, end, error) -> list[dict]:
    base = {"pid": track, "tid": 0}
    if category == "task":
        out = [{"ph": "X", "cat": "task", "name": name, "ts": _us(start), "dur": _us(max(0.0, end - start)),
                "args": {"task_id": key, "owner": detail, "failed": bool(error)}, **base}]
        if error:
            out.append({"ph": "i", "s": "t", "cat": "failure", "name": f"{name} failed", "ts": _us(end),
                        "args": {"task_id": key}, **base})
        return out
    if category == "fetch":
        out = [{"ph": "X", "cat": "fetch", "name": f"fetch {key[:8]}", "ts": _us(start),
                "dur": _us(max(0.0, end - start)),
                "args": {"object_id": key, "task": name, "bytes": detail, "error": error}, **base}]
        if error:
            out.append({"ph": "i", "s": "t", "cat": "failure", "name": f"fetch {key[:8]} failed", "ts": _us(end),
                        "args": {"object_id": key, "error": error}, **base})
        return out
    if category in ("lease", "transfer"):
        if category == "lease":
            title, args = f"lease wait ({name})", {"request": key, "resources": name, "node": detail,
                                                    "error": error}
        else:
            title, args = f"pull {key[:8]}", {"object_id": key, "source": name, "bytes": detail, "error": error}
        ident = f"{category}-{track}-{key}"
        out = [{"ph": "b", "cat": category, "name": title, "id": ident, "ts": _us(start), "args": args, **base},
               {"ph": "e", "cat": category, "name": title, "id": ident, "ts": _us(max(start, end)), **base}]
        if error:
            out.append({"ph": "i", "s": "t", "cat": "failure", "name": f"{title} failed", "ts": _us(end),
                        "args": args, **base})
        return out
    # retry, failure: instant events on the owner's track
    return [{"ph": "i", "s": "t", "cat": category, "name": f"{category}: {name}", "ts": _us(start),
             "args": {"task_id": key, "why": detail}, **base}]
