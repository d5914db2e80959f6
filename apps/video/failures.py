"""Failure experiments of the video app (paper §2.6): `--fail KIND@Ns`, and the cluster they need.

Owns starting the engine for a run (`start_engine`: embedded single- or multi-node cluster,
or `address`; metadata mode; pass-by-value), and `Injector`, a driver thread that fires the failure at `start + N s`:

* decoder: SIGKILL of the first video's Decoder actor process (restarted by the engine,
  in-flight decode calls retried);
* owner: SIGKILL of the first video's owner process (its objects and Decoder fate-share;
  the driver's engine re-runs the owner task, which resumes from its checkpoint);
* node: `cluster.kill_node` of the node running the first video's Decoder (needs
  `--nodes N` >= 2: node 0 holds the driver, the Sinks and the owners, nodes 1..N-1 the
  Decoders, so a killed node's Decoders restart on the others).

Decoders ask for `video_worker`, which every node of a multi-node cluster has; on node 0 a
`Reserve` actor holds all of it while other nodes can host Decoders, so they start on nodes
1..N-1 (the daemon places a request locally only when it fits now, else spills it to a node
with room). When a node failure leaves no other node with `video_worker` (`--nodes 2`), the
injector releases the reserve right after the kill and the Decoders restart on node 0: the
experiment still loses a node with every Decoder on it, and recovers on the one machine left.

Processes are found through the pids that owners and decoders write to the KV (pipeline.py).
SIGKILL needs the process on this machine, so pid-based failures need an embedded cluster.
The injector records what it did (or why it could not) as a dict for the summary.
Thread-safe: the injector runs in its own thread and only reads the KV and sends a signal.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass

from ownrun import engine

from ..failures import FailurePlan, await_replacement
from . import pipeline

HEAD_RESOURCE = "video_head"  # node 0: driver, Sinks, owners
WORKER_RESOURCE = "video_worker"  # Decoders: nodes 1..N-1, and node 0 once its Reserve is released
CAPACITY = 1000  # of each custom resource per node
# Seconds without heartbeats before a silent node is declared dead: the engine's default. A
# killed node is seen at once (its connection to the head drops), so `--fail node@` needs no
# short timeout; with 3 s, the start of 60 videos on a 2-core machine once stalled node 0's
# heartbeats past it, and the node — the driver's own — was declared dead and fenced.
NODE_DEATH_TIMEOUT = 10.0


@dataclass
class Placement:
    """Where the run's actors go (empty dicts: anywhere), the cluster's CPUs, and the actor
    holding node 0's Decoder capacity in reserve (multi-node clusters)."""

    decoder: dict
    sink: dict
    total_cpus: float
    reserve: object | None = None


class Reserve:
    """Holds node 0's `video_worker` while other nodes host the Decoders (killed to release it)."""

    def ready(self) -> bool:
        return True


RemoteReserve = engine.remote(num_cpus=0)(Reserve)


def start_engine(*, address: str | None, nodes: int, num_cpus: float | None, metadata: str,
                 by_value: bool, node_death_timeout: float = NODE_DEATH_TIMEOUT,
                 lease_idle_timeout: float | None = None, object_store_memory: int | None = None) -> Placement:
    """Starts (or joins) the cluster for a run and says where actors go."""
    options: dict = {"metadata": metadata, "node_death_timeout": node_death_timeout}
    if lease_idle_timeout is not None:
        options["lease_idle_timeout"] = lease_idle_timeout
    if by_value:
        options["inline_threshold"] = 2**40
    if address:
        engine.init(address=address, **options)
        return Placement({}, {}, _cluster_cpus())
    if object_store_memory is not None:
        options["object_store_memory"] = object_store_memory
    if nodes <= 1:
        engine.init(num_cpus=num_cpus, **options)
        return Placement({}, {}, _cluster_cpus())
    engine.init(num_cpus=num_cpus, resources={HEAD_RESOURCE: CAPACITY, WORKER_RESOURCE: CAPACITY}, **options)
    reserve = RemoteReserve.options(resources={HEAD_RESOURCE: 1, WORKER_RESOURCE: CAPACITY}).remote()
    engine.get(reserve.ready.remote())  # placed (node 0's Decoder capacity taken) before any Decoder
    cpus = num_cpus if num_cpus is not None else _cluster_cpus()  # node 0's: as given, or what this process may use
    for _ in range(nodes - 1):
        engine.cluster.add_node(num_cpus=cpus, resources={WORKER_RESOURCE: CAPACITY})
    return Placement({"resources": {WORKER_RESOURCE: 1}}, {"resources": {HEAD_RESOURCE: 1}}, _cluster_cpus(), reserve)


def _cluster_cpus() -> float:
    return float(sum(n["resources"].get("CPU", 0) for n in engine.cluster.nodes() if n["alive"]))


def cpu_share(total_cpus: float, videos: int) -> float:
    """What each video's flow task asks for: half its share of the cluster's CPUs (at most 1).

    With a share, every owner keeps its own lease frame after frame and the OS shares the
    cores, as each video had its own machine in the paper's cluster. One CPU-sized shape works
    too (60 owners take turns on 2 workers; the engine hands leases over without churn: kept
    up in 7 of 7 runs, 2 of them beside busy loops, at 4.3-5.4 ms of CPU per frame, p99 44-150
    ms, 58 fewer processes), but costs ~5% more CPU and a longer tail under load than the
    share (4.0-5.7 ms, p99 37-58 ms), measured 2026-12-03. Half the share leaves room for an
    owner that falls behind to lease a second worker (flow tasks longer than 1 ms are not
    pipelined) without waiting, which would make the daemon recall every owner's idle lease."""
    if videos <= 0 or total_cpus <= 0:
        return 1.0
    return min(1.0, math.floor(total_cpus / (2 * videos) * 1e4) / 1e4)


def read_process(prefix: str, key_of, video: str) -> dict | None:
    raw = engine.kv.get(key_of(prefix, video))
    return json.loads(raw) if raw else None


class Injector(threading.Thread):
    """Fires one planned failure at `start_ts + plan.at_s` against `video`."""

    def __init__(self, plan: FailurePlan, start_ts: float, prefix: str, video: str, reserve=None):
        super().__init__(name=f"ownrun-video-fail-{plan.kind}", daemon=True)
        self.plan = plan
        self.reserve = reserve  # Placement.reserve: released when no other node can host Decoders
        self.start_ts = start_ts
        self.prefix = prefix
        self.video = video
        self.cancelled = threading.Event()
        self.event: dict = {"kind": plan.kind, "at_s": plan.at_s, "target": video, "videos": [video]}

    def cancel(self) -> None:
        self.cancelled.set()

    def run(self) -> None:
        if self.cancelled.wait(max(0.0, self.start_ts + self.plan.at_s - time.time())):
            self.event["error"] = "not fired: the run ended first"
            return
        try:
            getattr(self, f"_kill_{self.plan.kind}")()
        except Exception as exc:  # reported in the summary, never crashes the run
            self.event["error"] = f"{type(exc).__name__}: {exc}"

    def _registered(self, key_of, what: str, timeout: float = 30.0) -> dict:
        """The process announced for `what`, waiting for it (on a loaded machine a Decoder may
        still be starting when the failure is due)."""
        deadline = time.monotonic() + timeout
        while True:
            info = read_process(self.prefix, key_of, self.video)
            if info is not None:
                return info
            if time.monotonic() > deadline or self.cancelled.wait(0.02):
                raise RuntimeError(f"no {what} process registered for {self.video}")

    def _kill_pid(self, key_of, what: str) -> None:
        info = self._registered(key_of, what)
        pid = int(info["pid"])
        os.kill(pid, signal.SIGKILL)
        killed = time.time()
        self.event.update(ts=killed, pid=pid, node_id=info.get("node_id"),
                          target=f"{what} of {self.video} (pid {pid})")
        self._await_replacement(key_of, pid, killed)

    def _await_replacement(self, key_of, pid: int, killed: float, timeout: float = 30.0) -> None:
        """Records when a new process announced itself for the same role (the restart)."""
        self.event.update(await_replacement(lambda: read_process(self.prefix, key_of, self.video), pid, killed,
                                            self.cancelled, timeout))

    def _kill_decoder(self) -> None:
        self._kill_pid(pipeline.decoder_key, "decoder")

    def _kill_owner(self) -> None:
        self._kill_pid(pipeline.owner_key, "owner")

    def _kill_node(self) -> None:
        node_id = self._registered(pipeline.decoder_key, "decoder")["node_id"]
        driver_node = engine.get_runtime_context().node_id
        if node_id == driver_node:
            raise RuntimeError("the decoder runs on the driver's node; use --nodes 2 or more")
        victims = [v for v in self._videos_on(node_id)]
        hosts = [n for n in engine.cluster.nodes() if n["alive"] and WORKER_RESOURCE in n["resources"]
                 and n["node_id"] not in (node_id, driver_node)]
        engine.cluster.kill_node(node_id)
        self.event.update(ts=time.time(), node_id=node_id, videos=victims,
                          target=f"node {node_id[:8]} ({len(victims)} decoders)")
        if not hosts and self.reserve is not None:  # the last node that hosted Decoders: node 0 takes them
            engine.kill(self.reserve)
            self.event["decoders_restart_on"] = "node 0 (its reserve released)"

    def _videos_on(self, node_id: str) -> list[str]:
        found = []
        for key in engine.kv.list(f"{self.prefix}/"):
            name = key.decode()
            if name.endswith("/decoder"):
                info = json.loads(engine.kv.get(key) or b"{}")
                if info.get("node_id") == node_id:
                    found.append(name[len(self.prefix) + 1:-len("/decoder")])
        return found
