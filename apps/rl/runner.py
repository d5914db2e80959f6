"""The driver behind `ownrun rl es` and `ownrun rl ppo`: `run_es(config)` / `run_ppo(config)`.

Each starts the engine (cluster.py; a process whose engine is already up runs on it, with
`nodes`/`num_cpus` left to that engine, and leaves it up), creates the Recorder (driver-owned, so it outlives the
owner), submits one owner task for the training run (the driver owns it: when its process
dies the engine re-runs it, `OWNER_RETRIES` times), fires the planned failure, shows progress
(a Rich live view on a terminal, else a plain line per second), and writes the run directory
(`<runs>/<timestamp>/summary.json` + `iterations.csv`). ES also makes the noise table with a
task here, so the table outlives a killed owner and lineage can rebuild it, and measures what
creating and sharing it cost.

Not thread-safe: one run at a time per process (the engine is per process). Failures: the
owner's error (an env failing in a worker, retries exhausted) propagates as an engine error;
the engine is shut down and the KV entries of the run removed in every case.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from pathlib import Path

from ownrun import engine

from ..run_dir import new_run_dir, write_timeline
from . import cluster, es, memory, report, state
from .config import EsConfig, PpoConfig
from .failures import Injector

OWNER_RETRIES = 3
PLAIN_EVERY_S = 1.0


def run_es(config: EsConfig, console=None, run_dir: Path | None = None, engine_options: dict | None = None) -> dict:
    """Trains with evolution strategies until the target, max_steps or max_time; returns the summary.

    `run_dir`: write the run there (default: a new folder under `config.runs`);
    `engine_options`: address, node_death_timeout, object_store_memory (`ownrun run` jobs)."""
    return _run("es", config, console, run_dir, engine_options or {})


def run_ppo(config: PpoConfig, console=None, run_dir: Path | None = None, engine_options: dict | None = None) -> dict:
    """Collects PPO rollouts and trains until the target, max_steps or max_time; returns the
    summary. Arguments as `run_es`."""
    return _run("ppo", config, console, run_dir, engine_options or {})


def _run(algorithm: str, config, console, run_dir: Path | None, engine_options: dict) -> dict:
    t0 = time.time()
    if engine.is_initialized():  # this process's engine (a program's or a test's): use it, leave it up
        return _run_on_engine(algorithm, config, cluster.current_placement(), t0, console, run_dir)
    placement = cluster.start_engine(config.nodes, config.num_cpus, **engine_options)
    try:
        return _run_on_engine(algorithm, config, placement, t0, console, run_dir)
    finally:
        engine.shutdown()


def _run_on_engine(algorithm, config, placement: cluster.Placement, t0: float, console, run_dir) -> dict:
    prefix = f"rl/{uuid.uuid4().hex[:12]}"
    workers = config.workers or max(1, int(placement.worker_cpus))
    recorder = state.RemoteRecorder.options(**placement.owner).remote()
    start_ts = time.time()
    settings = state.RunSettings(prefix, start_ts, workers, placement.worker_options(workers), placement.owner)
    noise_info = None
    if algorithm == "es":
        baseline = memory.shm_bytes()
        table_ref = _make_table(config, placement, prefix)
        if not placement.workers:  # one node only (es.warm_up), beside the table's task. With
            # --nodes N it made the node@ test fail 2 runs in 3 (restarted and replacement workers'
            # constructors kept getting ArgumentLostError for the dead node's table for 60 s)
            engine.get(es.warm_up.remote(config.env))
        owner_ref = es.es_owner.options(max_retries=OWNER_RETRIES, **placement.owner).remote(
            config, settings, [table_ref], recorder)
    else:
        from . import ppo

        owner_ref = ppo.ppo_owner.options(max_retries=OWNER_RETRIES, **placement.owner).remote(
            config, settings, recorder)
    plan = config.failure_plan
    injector = Injector(plan, prefix) if plan is not None else None
    if injector is not None:
        injector.start()
    attempts, first_ts = 0, None
    try:
        result, rows = _follow(owner_ref, recorder, config, console, algorithm)
        if algorithm == "es":
            noise_info = _noise_figures(config, prefix, start_ts, workers, baseline, result)
    finally:
        if injector is not None:
            injector.cancel()
            injector.join(timeout=5)
        with contextlib.suppress(engine.EngineError):
            attempts = int(engine.kv.get(f"{prefix}/attempts") or b"0")
            first_ts = state.started_at(prefix)
            state.cleanup(prefix)
    summary = _summarize(algorithm, config, result, rows, workers, t0, start_ts, attempts,
                         [injector.event] if injector else [], noise_info)
    summary["phases"] = _phases(t0, start_ts, first_ts, rows)
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(config.runs)
    summary["run_dir"] = str(run_dir)
    if config.timeline:  # before the engine stops: the trace is gathered from its processes
        summary["timeline"] = str(write_timeline(run_dir, config.timeline))
    report.write_run(run_dir, summary, rows)
    return summary


def _make_table(config: EsConfig, placement, prefix: str):
    return es.noise.make_noise.options(**placement.noise).remote(config.noise_size, config.seed,
                                                                 state.noise_key(prefix))


def _noise_figures(config: EsConfig, prefix: str, start_ts: float, workers: int, baseline, result) -> dict:
    """Size of the table, time from its task's submission until every worker had it, growth of the
    shared-memory store (one copy per node that holds it) and the workers' mean private memory
    (which would include the table if a worker had copied it)."""
    announced = [a for a in (state.read(state.worker_key(prefix, k)) for k in range(workers)) if a]
    table = state.read(state.noise_key(prefix))
    ready = max((a.get("table_ts", a["ts"]) for a in announced), default=None)
    nodes = len({a["node_id"] for a in announced})
    private = result.get("worker_private_bytes")
    made = table.get("made_ts") if table else None
    return {"entries": config.noise_size, "mib": config.noise_size * 4 / 2**20,
            "made_on": table["node_id"] if table else None, "nodes": nodes,
            "made_s": (made - start_ts) if made else None,
            "shared_s": (ready - start_ts) if ready else None,
            "store_growth_mib": (memory.shm_bytes() - baseline) / 2**20,
            "worker_private_mib": private / 2**20 if private else None}


def _follow(owner_ref, recorder, config, console, algorithm) -> tuple[dict, list[dict]]:
    """Waits for the owner task while showing its rows; returns (its result, all rows)."""
    rows: list[dict] = []
    view = _View(console, algorithm) if (console is not None and config.live) else None
    with view.live() if view else contextlib.nullcontext():
        while True:
            ready, _ = engine.wait([owner_ref], timeout=0.5)
            rows.extend(engine.get(recorder.since.remote(len(rows)), timeout=30))
            if view is not None:
                view.update(rows)
            if ready:
                return engine.get(owner_ref), rows


def _summarize(algorithm, config, result, rows, workers, t0, start_ts, attempts, failures, noise_info) -> dict:
    last = rows[-1] if rows else {}
    key = "eval_return" if algorithm == "es" else "mean_return"
    train_s = (last.get("ts", start_ts) - start_ts) if rows else 0.0
    return {
        "algorithm": algorithm, "env": config.env, "config": config.model_dump(),
        "target": result["target"], "reached": result["reached"],
        "final_return": last.get(key), "best_return": max((r[key] for r in rows), default=None),
        "iterations": result["iterations"], "env_steps": result["env_steps"],
        "steps_per_s": result["env_steps"] / train_s if train_s > 0 else 0.0,
        "train_s": train_s, "wall_s": time.time() - t0, "start_ts": start_ts, "workers": workers,
        "owner_attempts": attempts, "resumed_from": result["resumed_from"],
        "all_exact": all(r.get("exact", True) for r in rows),
        "failures": [report.failure_effect(f, rows) for f in failures],
        "noise_table": noise_info,
        **({"autograd_in_workers": result["autograd_in_workers"]} if algorithm == "ppo" else {}),
    }


def _phases(t0: float, start_ts: float, first_ts: float | None, rows: list[dict]) -> dict:
    """Where a run's time went: engine start (and the Recorder), from then until the first
    iteration started (noise table, owner and workers), and the iterations."""
    last = rows[-1]["ts"] if rows else None
    return {"engine_start_s": start_ts - t0,
            "until_first_iteration_s": (first_ts - start_ts) if first_ts else None,
            "iterations_s": (last - first_ts) if first_ts and last else None}


class _View:
    """Progress: a Rich live line on a terminal, else one plain line per PLAIN_EVERY_S."""

    def __init__(self, console, algorithm: str):
        self.console = console
        self.algorithm = algorithm
        self.started = time.time()
        self.last_plain = 0.0
        self.printed = 0  # rows seen at the last plain line
        self.live_display = None

    def live(self):
        if not self.console.is_terminal:
            return contextlib.nullcontext()
        from rich.live import Live

        self.live_display = Live(self.render(None), console=self.console, refresh_per_second=4, transient=True)
        return self.live_display

    def render(self, row: dict | None) -> str:
        if row is None:
            return f"rl {self.algorithm}: starting ({time.time() - self.started:.1f} s)"
        key = "eval_return" if self.algorithm == "es" else "mean_return"
        rate = row["env_steps"] / row["elapsed_s"] if row["elapsed_s"] > 0 else 0.0
        return (f"iter {row['iteration']:4d}  return {row[key]:8.1f}  max {row['max_return']:8.1f}  "
                f"steps {row['env_steps']:>10,}  {rate:>9,.0f} steps/s  {row['elapsed_s']:6.1f} s"
                + (f"  (owner attempt {row['attempt']})" if row["attempt"] > 1 else ""))

    def update(self, rows: list[dict]) -> None:
        row = rows[-1] if rows else None
        if self.live_display is not None:
            self.live_display.update(self.render(row))
        elif len(rows) > self.printed and time.time() - self.last_plain >= PLAIN_EVERY_S:
            self.last_plain, self.printed = time.time(), len(rows)
            self.console.print(self.render(row), soft_wrap=True)
