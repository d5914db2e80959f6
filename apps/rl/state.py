"""What a training run keeps outside its owner: KV keys, process announcements, checkpoints,
and the driver's Recorder actor.

* Every owner, rollout worker and noise task writes {"pid", "node_id", "ts"} under
  `<prefix>/owner`, `<prefix>/worker/<k>`, `<prefix>/noise` (failure injection and reports
  find processes there; a restarted actor or re-run task overwrites its entry).
* `<prefix>/started`: when the first iteration of the run started (written once).
* `<prefix>/attempts`: how many owner attempts have started (the owner task counts itself).
* `<prefix>/checkpoint`: the owner's state every K iterations (pickled dict: weights,
  optimizer state, filter, iteration, RNG state, counters), read back by a re-run owner.
* `RunSettings`: what the driver tells every owner attempt (KV prefix, start time, placement).
* `Recorder`: an actor the driver owns, so it outlives the owners: it receives one row per
  finished iteration from every owner attempt and hands them to the driver's live view.

Thread-safe: each helper is one KV request; the Recorder is an actor (calls run in order).
Failures: engine errors propagate (NodeUnreachableError when the head is gone).
"""

from __future__ import annotations

import json
import os
import pickle
import time
from dataclasses import dataclass

from ownrun import engine


@dataclass(frozen=True)
class RunSettings:
    """What the driver tells every attempt of a run's owner."""

    prefix: str  # KV prefix of the run
    start_ts: float  # wall-clock start of the run (max_time counts from here)
    workers: int
    worker_options: dict  # placement and CPU share of rollout workers and aggregators
    owner_options: dict


def owner_key(prefix: str) -> str:
    return f"{prefix}/owner"


def worker_key(prefix: str, index: int) -> str:
    return f"{prefix}/worker/{index}"


def noise_key(prefix: str) -> str:
    return f"{prefix}/noise"


def announce(key: str, **extra) -> None:
    """Writes this process's pid and node to the KV."""
    node = engine.get_runtime_context().node_id
    engine.kv.put(key, json.dumps({"pid": os.getpid(), "node_id": node, "ts": time.time(), **extra}).encode())


def read(key: str) -> dict | None:
    raw = engine.kv.get(key)
    return json.loads(raw) if raw else None


def mark_started(prefix: str) -> None:
    engine.kv.put(f"{prefix}/started", repr(time.time()).encode(), overwrite=False)


def started_at(prefix: str) -> float | None:
    raw = engine.kv.get(f"{prefix}/started")
    return float(raw) if raw else None


def next_attempt(prefix: str) -> int:
    """1 for the first owner attempt, 2 for its first re-run, ..."""
    key = f"{prefix}/attempts"
    attempt = int(engine.kv.get(key) or b"0") + 1
    engine.kv.put(key, str(attempt).encode())
    return attempt


def save_checkpoint(prefix: str, state: dict) -> None:
    engine.kv.put(f"{prefix}/checkpoint", pickle.dumps(state, protocol=5))


def load_checkpoint(prefix: str) -> dict | None:
    raw = engine.kv.get(f"{prefix}/checkpoint")
    return pickle.loads(raw) if raw else None


def cleanup(prefix: str) -> None:
    for key in engine.kv.list(prefix + "/"):
        engine.kv.delete(key)


class Recorder:
    """Collects the iteration rows of every owner attempt, in arrival order."""

    def __init__(self):
        self.rows: list[dict] = []

    def record(self, row: dict) -> int:
        self.rows.append(row)
        return len(self.rows)

    def since(self, start: int = 0) -> list[dict]:
        return self.rows[start:]


RemoteRecorder = engine.remote(num_cpus=0)(Recorder)
