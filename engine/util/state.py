"""The state API: what runs, what is stored and who owns it, asked of the owners.

    from ownrun.engine.util import state
    state.list_tasks(filters=[("state", "=", "done")], limit=10)   # a Listing: rows + .total
    state.summarize_tasks()                                         # {name: {state: count}}

Every answer is gathered when asked (engine/state/gather.py): the head names the nodes,
each daemon its processes, and each driver and worker reports the tasks, objects and
actors it owns. Filters apply before the limit; `Listing.total` counts every row that
passed them ("N of M": `Listing.header`). Inside `engine.init()` the driver's own core
worker asks; otherwise (`address=`, or no runtime) a temporary client joins the cluster at
`address` (as `ownrun status` does: None means the one started from this machine).

Thread-safe as far as the driver's core worker is (each call is independent). Failures:
`ClusterError` when the head does not answer; `ValueError` for a bad filter or limit;
processes that do not answer are listed in `Listing.unreachable`, not raised.
"""

from __future__ import annotations

from .. import object_ref
from ..cluster.join import resolve
from ..state import gather as g
from ..state import query

DEFAULT_LIMIT = 100

COLUMNS = {
    "tasks": ("task_id", "name", "state", "type", "node_id", "worker_id", "owner"),
    "objects": ("object_id", "size", "where", "node_id", "pinned", "local_refs", "borrowers", "owner"),
    "actors": ("actor_id", "class_name", "name", "state", "node_id", "restarts", "owner"),
    "nodes": ("node_id", "address", "alive", "cpu_total", "cpu_available", "store_used", "store_capacity"),
    "workers": ("worker_id", "kind", "pid", "node_id", "address"),
}
KINDS = tuple(COLUMNS)
_OWNER = ("owner", "owner_node", "owner_kind")
FIELDS = {  # every field of a row (`detail=True`); filters may name any of them
    "tasks": (*COLUMNS["tasks"], "owner_node", "owner_kind"),
    "objects": ("object_id", "size", "where", "node_id", "pinned", "copies", "local_refs", "submitted_refs",
                "contained_in", "borrowers", "callsite", *_OWNER),
    "actors": (*COLUMNS["actors"], "address", "worker_id", "dead_reason", "owner_node", "owner_kind"),
    "nodes": (*COLUMNS["nodes"], "store_objects", "store_pinned", "store_spilled", "spilled_objects"),
    "workers": COLUMNS["workers"],
}


def _caller(address: str | None, cluster_key: str | None):
    core = object_ref.current_worker()
    if address is None and core is not None:
        return g.DriverCaller(core)
    target = resolve(address, cluster_key)
    return g.OneShotCaller(target.head_address, target.curve)


def gather(what: tuple[str, ...], address: str | None = None, cluster_key: str | None = None) -> g.Gathered:
    """Every row of the kinds in `what`, from every process (see engine/state/gather.py)."""
    caller = _caller(address, cluster_key)
    try:
        return g.gather(caller, what)
    finally:
        caller.close()


def list_state(kind: str, filters=None, limit: int | None = DEFAULT_LIMIT, detail: bool = False,
               address: str | None = None, cluster_key: str | None = None) -> query.Listing:
    """The `kind` rows (one of KINDS) passing `filters` ([(key, "=" or "!=", value)]), at most `limit`."""
    if kind not in COLUMNS:
        raise ValueError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    found = gather((kind,), address, cluster_key)
    return query.select(getattr(found, kind), kind, filters, limit, FIELDS[kind] if detail else COLUMNS[kind],
                        found.unreachable, FIELDS[kind])


def list_tasks(filters=None, limit=DEFAULT_LIMIT, detail=False, address=None, cluster_key=None):
    return list_state("tasks", filters, limit, detail, address, cluster_key)


def list_objects(filters=None, limit=DEFAULT_LIMIT, detail=False, address=None, cluster_key=None):
    return list_state("objects", filters, limit, detail, address, cluster_key)


def list_actors(filters=None, limit=DEFAULT_LIMIT, detail=False, address=None, cluster_key=None):
    return list_state("actors", filters, limit, detail, address, cluster_key)


def list_nodes(filters=None, limit=DEFAULT_LIMIT, detail=False, address=None, cluster_key=None):
    return list_state("nodes", filters, limit, detail, address, cluster_key)


def list_workers(filters=None, limit=DEFAULT_LIMIT, detail=False, address=None, cluster_key=None):
    return list_state("workers", filters, limit, detail, address, cluster_key)


def summarize_tasks(address=None, cluster_key=None) -> dict:
    """{task name: {state: count, "total": count}} over every task the owners remember."""
    return query.summarize(gather(("tasks",), address, cluster_key).tasks, "name")


def summarize_actors(address=None, cluster_key=None) -> dict:
    """{class name: {state: count, "total": count}}."""
    return query.summarize(gather(("actors",), address, cluster_key).actors, "class_name")


def summarize_objects(address=None, cluster_key=None) -> dict:
    """{where: {"objects", "bytes"}}: inline, shared_memory, error, pending."""
    out: dict = {}
    for row in gather(("objects",), address, cluster_key).objects:
        group = out.setdefault(row["where"], {"objects": 0, "bytes": 0})
        group["objects"] += 1
        group["bytes"] += row.get("size") or 0
    return dict(sorted(out.items()))


def memory(address=None, cluster_key=None) -> list[dict]:
    """Objects by owner, the node holding them and call site (OWNRUN_RECORD_CALLSITES=1), with
    counts and bytes, largest first."""
    return query.memory(gather(("objects",), address, cluster_key).objects)


def memory_report(address=None, cluster_key=None) -> dict:
    """`memory()` ("groups") and each node's store ("nodes": used, capacity, pinned and
    spilled bytes, spilled objects), from one gathering."""
    found = gather(("objects",), address, cluster_key)
    nodes = [{key: node[key] for key in ("node_id", "alive", "store_used", "store_capacity", "store_pinned",
                                         "store_spilled", "spilled_objects")} for node in found.nodes]
    return {"groups": query.memory(found.objects), "nodes": nodes, "unreachable": found.unreachable}


def timeline(path: str | None = None, address=None, cluster_key=None) -> dict:
    """A Chrome trace (open it in Perfetto or chrome://tracing) of the timeline events every
    process remembers (engine/state/spans.py: tasks, argument fetches, object transfers, lease
    waits, retries, failures; the latest OWNRUN_TIMELINE_EVENTS per process), written to
    `path` if given."""
    import json

    from ..state.trace import chrome_trace

    trace = chrome_trace(gather(("timeline",), address, cluster_key).timeline)
    if path is not None:
        with open(path, "w") as f:
            json.dump(trace, f)
    return trace
