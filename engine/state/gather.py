"""Gathering the state API's answers from the owners: the head names the nodes, each node's
daemon names its processes (drivers and workers), and each of those answers a STATE_QUERY
from its own records (snapshot.py). Nothing is stored centrally; no task writes to the head.

Owns the walk (head NODE_LIST -> daemons NODE_STATS -> core workers STATE_QUERY; for the
timeline, also each daemon's own events: NODE_STATS ["timeline"]) and the
two ways of sending its requests: from a driver's own core worker (`DriverCaller`: inside
`engine.init()`, embedded or joined) or from a process outside the cluster
(`OneShotCaller`: the CLI, with the cluster's key). A process that does not answer in
time (it exited meanwhile, or is stuck) is listed in `unreachable`; the answer is what
the others said. A head that does not answer raises `ClusterError`. A driver asks the
processes at once (`DriverCaller.parallel`), so processes that exited meanwhile (after a run
that killed its actors: dozens) cost one deadline in all, not one each; the CLI's one-shot
client asks them in turn (it is not thread-safe; a process gone is refused within ~1 s).

Not thread-safe (one gather per caller at a time); each request has a deadline.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import ClusterError
from ..rpc import addresses, oneshot
from ..rpc import protocol as P

TIMEOUT = 5.0  # seconds per request
PARALLEL_REQUESTS = 32  # a driver's requests in flight at once (one thread each)


class DriverCaller:
    """Requests sent by this process's core worker (a driver inside `engine.init()`)."""

    parallel = True  # `core.call` may be called from several threads at once

    def __init__(self, core):
        self.core = core
        self.head_address = core.head_address

    def __call__(self, address: str, kind: int, *fields):
        return self.core.call(address, kind, *fields, timeout=TIMEOUT)

    def close(self) -> None:
        pass


class OneShotCaller:
    """Requests from a process outside the cluster: one temporary inbox (the head's client's),
    a client per peer sharing it (`OneShotClient.peer`)."""

    def __init__(self, head_address: str, curve):
        self.head_address = head_address
        self.curve = curve
        self._clients: dict[str, oneshot.OneShotClient] = {}

    def __call__(self, address: str, kind: int, *fields):
        client = self._clients.get(address)
        if client is None:
            first = self._clients.get(self.head_address)
            if first is None:
                first = self._clients[self.head_address] = oneshot.OneShotClient(self.head_address, self.curve)
            client = self._clients[address] = first if address == self.head_address else first.peer(address)
        return client.call(kind, *fields, timeout=TIMEOUT)

    def close(self) -> None:
        head = self._clients.pop(self.head_address, None)
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        if head is not None:
            head.close()


@dataclass
class Gathered:
    """Every row the cluster's processes reported, by kind, and who did not answer."""

    nodes: list = field(default_factory=list)
    workers: list = field(default_factory=list)
    tasks: list = field(default_factory=list)
    objects: list = field(default_factory=list)
    actors: list = field(default_factory=list)
    timeline: list = field(default_factory=list)  # one {"events", "dropped", "pid", ...} per process
    unreachable: list = field(default_factory=list)  # [{"address", "error"}]


def gather(call, what: tuple[str, ...]) -> Gathered:
    """Asks the head, the daemons and (for tasks, objects, actors in `what`) every core worker."""
    out = Gathered()
    try:
        view = call(call.head_address, P.NODE_LIST)
    except Exception as exc:  # noqa: BLE001 - the head's failure ends the query
        raise ClusterError(f"the head at {addresses.plain(call.head_address)} did not answer: {exc}") from None
    worker_node: dict = {}
    processes = []
    process_node: dict = {}
    for node_id, node in sorted(view.items()):
        store = node.get("store") or {}
        out.nodes.append({"node_id": node_id, "address": node["address"], "alive": node["alive"],
                          "cpu_total": node.get("total", {}).get("CPU"),
                          "cpu_available": node.get("available", {}).get("CPU"),
                          "store_used": store.get("used"), "store_capacity": store.get("capacity"),
                          "store_objects": store.get("num_objects"), "store_pinned": store.get("pinned_bytes"),
                          "store_spilled": store.get("spilled_bytes"), "spilled_objects": store.get("num_spilled")})
        if not node["alive"]:
            continue
        try:
            stats = call(node["address"], P.NODE_STATS)
        except Exception as exc:  # noqa: BLE001 - a node that died meanwhile
            out.unreachable.append({"address": node["address"], "error": str(exc)})
            continue
        if "timeline" in what:  # the daemon's own events (object transfers)
            try:
                events = call(node["address"], P.NODE_STATS, ["timeline"])["timeline"]
                out.timeline.append({**events, "node_id": node_id, "owner_kind": "daemon", "worker_id": ""})
            except Exception as exc:  # noqa: BLE001 - a node that died meanwhile
                out.unreachable.append({"address": node["address"], "error": str(exc)})
        for address, worker_id, pid, kind in stats.get("processes", ()):
            worker_hex = worker_id.hex() if isinstance(worker_id, bytes) else worker_id
            worker_node[worker_hex] = node_id
            out.workers.append({"worker_id": worker_hex, "kind": kind, "pid": pid, "address": address,
                                "node_id": node_id})
            processes.append(address)
            process_node[address] = node_id
    asked = [kind for kind in ("tasks", "objects", "actors", "timeline") if kind in what]
    if not asked:
        return out
    for address, answer in _ask_each(call, processes, P.STATE_QUERY, asked):
        if isinstance(answer, Exception):  # exited meanwhile, or stuck
            out.unreachable.append({"address": address, "error": str(answer)})
            continue
        for kind in asked:
            if kind == "timeline":
                out.timeline.append({**answer["timeline"], "node_id": process_node[address]})
            else:
                getattr(out, kind).extend(answer.get(kind, ()))
    for row in out.tasks:
        if row.get("node_id") is None and row.get("worker_id"):
            row["node_id"] = worker_node.get(row["worker_id"])
    return out


def _ask_each(call, addresses: list, kind: int, *fields) -> list:
    """[(address, answer or the exception the call raised)] for each address, in order; at
    once from a caller that allows it (`parallel`), else one after the other."""
    def ask(address):
        try:
            return call(address, kind, *fields)
        except Exception as exc:  # noqa: BLE001 - returned for the caller to report
            return exc

    if getattr(call, "parallel", False) and len(addresses) > 1:
        with ThreadPoolExecutor(max_workers=min(PARALLEL_REQUESTS, len(addresses)),
                                thread_name_prefix="ownrun-state") as pool:
            return list(zip(addresses, pool.map(ask, addresses), strict=True))
    return [(address, ask(address)) for address in addresses]
