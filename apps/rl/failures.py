"""Failure injection of the RL app: `--fail worker@Ns | node@Ns | owner@Ns`.

Owns `Injector`, a driver thread that waits until the run's first iteration has started
(`<prefix>/started` in the KV) plus N seconds, then:

* worker: SIGKILL of rollout worker 0's process (the engine restarts the actor and re-runs its
  in-flight call; the iteration completes with the planned pairs or fragments);
* owner: SIGKILL of the owner task's process (the driver's engine re-runs the task, which
  resumes from its last checkpoint, or starts over without checkpoints);
* node: `cluster.kill_node` of the node where the noise table was made (never the driver's:
  the run needs `--nodes 3`+), taking its rollout workers and the table's primary copy.

Processes are found through the pids the run's processes announce (state.py), so pid-based
failures need an embedded cluster on this machine. The injector records what it did, or why
it could not, as a dict for the summary: the kill time, the pid or node, and when the killed
role's replacement announced itself. Thread-safe: it only reads the KV and sends a signal.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from ownrun import engine

from ..failures import FailurePlan, await_replacement
from . import state


class Injector(threading.Thread):
    def __init__(self, plan: FailurePlan, prefix: str, timeout: float = 600.0):
        super().__init__(name=f"ownrun-rl-fail-{plan.kind}", daemon=True)
        self.plan = plan
        self.prefix = prefix
        self.timeout = timeout
        self.cancelled = threading.Event()
        self.event: dict = {"kind": plan.kind, "at_s": plan.at_s}

    def cancel(self) -> None:
        self.cancelled.set()

    def run(self) -> None:
        try:
            started = self._wait_started()
            if started is None or self.cancelled.wait(max(0.0, started + self.plan.at_s - time.time())):
                self.event["error"] = "not fired: the run ended first"
                return
            getattr(self, f"_kill_{self.plan.kind}")()
        except Exception as exc:  # reported in the summary, never crashes the run
            self.event["error"] = f"{type(exc).__name__}: {exc}"

    def _wait_started(self) -> float | None:
        deadline = time.monotonic() + self.timeout
        while not self.cancelled.wait(0.05):
            started = state.started_at(self.prefix)
            if started is not None:
                return started
            if time.monotonic() > deadline:
                return None
        return None

    def _registered(self, key: str, what: str, timeout: float = 30.0) -> dict:
        """The process announced under `key`, waiting for it to announce itself (an actor's
        constructor may still be running when the first iteration starts)."""
        deadline = time.monotonic() + timeout
        while True:
            info = state.read(key)
            if info is not None:
                return info
            if time.monotonic() > deadline or self.cancelled.wait(0.02):
                raise RuntimeError(f"no {what} process registered")

    def _kill_pid(self, key: str, what: str) -> None:
        info = self._registered(key, what)
        pid = int(info["pid"])
        os.kill(pid, signal.SIGKILL)
        killed = time.time()
        self.event.update(ts=killed, pid=pid, node_id=info.get("node_id"), target=f"{what} (pid {pid})")
        self._await_replacement(key, pid, killed)

    def _await_replacement(self, key: str, pid: int, killed: float, timeout: float = 60.0) -> None:
        self.event.update(await_replacement(lambda: state.read(key), pid, killed, self.cancelled, timeout))

    def _kill_worker(self) -> None:
        self._kill_pid(state.worker_key(self.prefix, 0), "rollout worker 0")

    def _kill_owner(self) -> None:
        self._kill_pid(state.owner_key(self.prefix), "owner")

    def _kill_node(self) -> None:
        info = self._registered(state.noise_key(self.prefix), "noise task (ES only)")
        node_id = info["node_id"]
        if node_id == engine.get_runtime_context().node_id:
            raise RuntimeError("the noise table is on the driver's node; use --nodes 3 or more")
        engine.cluster.kill_node(node_id)
        killed = time.time()
        self.event.update(ts=killed, node_id=node_id, target=f"node {node_id[:8]} (noise table, pid {info['pid']})")
        self._await_replacement(state.noise_key(self.prefix), int(info["pid"]), killed)
        if "replacement_pid" in self.event:
            self.event["table_rebuilt"] = True
