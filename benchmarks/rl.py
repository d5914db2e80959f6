"""RL rollout benchmarks: the OSDI'18 Table 4 shape, ES to CartPole's threshold, tiny tasks, the noise table.

    python benchmarks/rl.py [--quick] [--json bench-results/rl.json]

1. Pendulum-v1 200-step rollouts (each task runs 1-4 of them, drawn at random, so tasks differ
   in length as simulations do): serial in one process vs barrier rounds of one task per CPU
   vs gather-as-finished (`engine.wait(num_returns=1)`, a new task submitted as each ends).
   Targets on 2 cores: gather >= 1.6x serial steps/s and >= 1.2x barrier.
2. `ownrun rl es` on CartPole-v1 to 475 with the default 100 MB noise table: wall time
   including cluster start (target <= 2 s).
3. Tiny tasks: one short CartPole episode (always push left) per task, episodes/s (vs the same loop
   in one process).
4. The 100 MB noise table: time until every worker had it, store growth, private memory per
   worker (from run 2).
Prints a table with the load average next to every figure and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ownrun import engine
from ownrun.apps.rl import config, envs, runner
from rich.console import Console
from rich.table import Table


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def pendulum_rollouts(count: int, seed: int) -> int:
    """`count` 200-step Pendulum-v1 rollouts of a fixed linear policy; returns env steps."""
    env = envs.make("Pendulum-v1")
    w = np.array([[-1.0, 0.5, -0.2]])
    steps = 0
    for k in range(count):
        obs, _ = env.reset(seed=seed + k)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(np.clip(w @ obs, -2, 2))
            steps += 1
            done = terminated or truncated
    return steps


def cartpole_episode(seed: int) -> int:
    """One CartPole-v1 episode pushing left every step (about 10 steps, a fraction of a ms)."""
    env = envs.make("CartPole-v1")
    obs, _ = env.reset(seed=seed)
    steps, done = 0, False
    while not done:
        obs, _, terminated, truncated, _ = env.step(0)
        steps += 1
        done = terminated or truncated
    return steps


def table4(tasks: int, cpus: int) -> dict:
    counts = np.random.default_rng(0).integers(1, 5, size=tasks)
    rollout = engine.remote(pendulum_rollouts)
    t = time.perf_counter()
    steps = sum(pendulum_rollouts(int(c), k) for k, c in enumerate(counts))
    serial = steps / (time.perf_counter() - t)
    engine.get([rollout.remote(1, 0) for _ in range(cpus)])  # warm workers and imports
    t = time.perf_counter()
    steps = 0
    for start in range(0, tasks, cpus):
        steps += sum(engine.get([rollout.remote(int(c), start + i) for i, c in enumerate(counts[start:start + cpus])]))
    barrier = steps / (time.perf_counter() - t)
    t = time.perf_counter()
    pending = [rollout.remote(int(counts[k]), k) for k in range(cpus)]
    submitted, steps = cpus, 0
    while pending:
        ready, pending = engine.wait(pending, num_returns=1)
        steps += engine.get(ready[0])
        if submitted < tasks:
            pending.append(rollout.remote(int(counts[submitted]), submitted))
            submitted += 1
    gather = steps / (time.perf_counter() - t)
    return {"serial_steps_per_s": serial, "barrier_steps_per_s": barrier, "gather_steps_per_s": gather,
            "gather_vs_serial": gather / serial, "gather_vs_barrier": gather / barrier, "loadavg": loadavg()}


def tiny_tasks(episodes: int) -> dict:
    t = time.perf_counter()
    for k in range(episodes):
        cartpole_episode(k)
    serial = episodes / (time.perf_counter() - t)
    episode = engine.remote(cartpole_episode)
    engine.get([episode.remote(k) for k in range(100)])
    t = time.perf_counter()
    engine.get([episode.remote(k) for k in range(episodes)])
    rate = episodes / (time.perf_counter() - t)
    return {"episodes_per_s": rate, "serial_episodes_per_s": serial,
            "episode_ms": 1e3 / serial, "loadavg": loadavg()}


def es_cartpole(runs: str) -> dict:
    before = loadavg()
    summary = runner.run_es(config.EsConfig(runs=runs, live=False))
    return {"wall_s": summary["wall_s"], "train_s": summary["train_s"], "iterations": summary["iterations"],
            "env_steps": summary["env_steps"], "reached": summary["reached"], "noise_table": summary["noise_table"],
            "loadavg": max(before, loadavg())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer tasks and episodes")
    parser.add_argument("--json", default="bench-results/rl.json")
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    cpus = os.cpu_count() or 1
    results: dict = {"cpus": cpus}
    with tempfile.TemporaryDirectory() as runs:
        console.print("ES on CartPole-v1 to 475 (100 MB noise table) ...")
        results["es_cartpole"] = es_cartpole(runs)
    engine.init(num_cpus=cpus)
    try:
        console.print("Pendulum rollouts: serial / barrier / gather-as-finished ...")
        results["table4"] = table4(40 if args.quick else 120, cpus)
        console.print("tiny tasks: one CartPole episode each ...")
        results["tiny_tasks"] = tiny_tasks(1000 if args.quick else 5000)
    finally:
        engine.shutdown()
    t4, tiny, es = results["table4"], results["tiny_tasks"], results["es_cartpole"]
    noise = es["noise_table"]
    table = Table(title="ownrun rl benchmarks", show_header=True, header_style="bold")
    for column in ("benchmark", "ownrun", "target", "load avg"):
        table.add_column(column, justify="right")
    table.add_row("Pendulum rollouts, serial", f"{t4['serial_steps_per_s']:,.0f} steps/s", "", "")
    table.add_row("  barrier rounds", f"{t4['barrier_steps_per_s']:,.0f} steps/s", "", "")
    table.add_row("  gather as finished", f"{t4['gather_steps_per_s']:,.0f} steps/s "
                  f"({t4['gather_vs_serial']:.2f}x serial, {t4['gather_vs_barrier']:.2f}x barrier)",
                  ">= 1.6x serial, >= 1.2x barrier", f"{t4['loadavg']:.1f}")
    table.add_row("ES CartPole-v1 to 475, incl. cluster start",
                  f"{es['wall_s']:.2f} s ({es['iterations']} iterations, reached: {es['reached']})",
                  "<= 2 s", f"{es['loadavg']:.1f}")
    table.add_row("tiny tasks: one CartPole episode each", f"{tiny['episodes_per_s']:,.0f} episodes/s "
                  f"(serial {tiny['serial_episodes_per_s']:,.0f}, {tiny['episode_ms']:.2f} ms each)",
                  ">= 3x Ray 2.60", f"{tiny['loadavg']:.1f}")
    table.add_row("100 MB noise table: with every worker", f"{noise['shared_s']:.2f} s after submit", "", "")
    table.add_row("  store growth / private per worker",
                  f"{noise['store_growth_mib']:.0f} MiB on {noise['nodes']} node(s) / "
                  f"{noise['worker_private_mib'] or 0:.0f} MiB", "<= 1.2x table per node", "")
    console.print(table)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
