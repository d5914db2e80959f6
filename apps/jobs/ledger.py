"""A job's ledger.jsonl: one JSON object per line, appended as things happen, never rewritten.

Events: `job_start` {job, runs, resumed}, `run_start` {run, config_hash}, `run_end` {run,
config_hash, status: ok | failed | timeout | interrupted, error, exit_code, duration_s},
`run_skipped` {run, config_hash}, `job_end` {status: finished | stopped | interrupted,
finished: [...]}; each with `ts` (Unix time). `finished(path)` is what `--resume` skips: the
(run, config_hash) pairs whose latest `run_end` says ok, or that a resumed job skipped.
Each line is flushed and fsynced when written, so a killed runner leaves a readable ledger
(a torn last line is ignored on reading). Not thread-safe: the runner writes from one thread.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

LEDGER = "ledger.jsonl"


class Ledger:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LEDGER

    def write(self, event: str, **fields) -> None:
        line = json.dumps({"ts": round(time.time(), 3), "event": event, **fields}, default=str)
        with open(self.path, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def events(self) -> list[dict]:
        return read(self.path)


def read(path: Path) -> list[dict]:
    events = []
    with open(path) as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # a line torn by a crash
    return events


def finished(path: Path) -> set[tuple[str, str]]:
    done: set[tuple[str, str]] = set()
    for event in read(path):
        key = (event.get("run"), event.get("config_hash"))
        if event.get("event") == "run_end":
            (done.add if event.get("status") == "ok" else done.discard)(key)
        elif event.get("event") == "run_skipped":
            done.add(key)
    return done
