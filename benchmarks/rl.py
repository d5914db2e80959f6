"""RL rollout benchmarks: the OSDI'18 Table 4 shape, ES to CartPole's threshold, tiny tasks next to Ray, the noise table.

    python benchmarks/rl.py [--rounds 3] [--quick] [--ray-python auto|none|PATH] [--json PATH]

1. `ownrun rl es` on CartPole-v1 to 475 with the default 100 MB noise table and seed 0, as a
   command: the process's wall time (Python start, imports, cluster start, training, shutdown)
   and the run's own `wall_s` (engine start to target). Target <= 2 s.
2. Tiny tasks: one short CartPole episode per task, episodes/s, through ownrun and through Ray
   running the same code (benchmarks/rl_bodies.py), each in a child process of its own.
   Target >= 3x Ray 2.60. Ray is used when `--ray-python` (default: this interpreter) can
   import it; ownrun never depends on it.
3. Pendulum-v1 200-step rollouts (1-4 per task): serial in one process vs barrier rounds vs
   gather-as-finished. Targets on 2 cores: gather >= 1.6x serial steps/s and >= 1.2x barrier.
4. The 100 MB noise table (from run 1): time until every worker had it, store growth (one
   copy per node), private memory per worker.
Each round runs 1, 2 (ownrun, then Ray) and 3, so a slow phase of a shared machine hits every
figure alike; the JSON keeps every round with the load average around it, and the medians.
Writes benchmarks/results/rl.json (`meta` layout); `python benchmarks/report.py` puts the
figures into the README. How it fails: a child that fails leaves its cell empty and its error
in the JSON (`errors`), and the exit code is 1.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ownrun.benchmarks import RESULTS_DIR, meta
from rich.console import Console
from rich.table import Table

BODIES = Path(__file__).resolve().parent / "rl_bodies.py"
TIMEOUT_S = 600


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def ray_python(choice: str) -> str | None:
    """The interpreter that runs the Ray child: `auto` is this one if it can import ray."""
    if choice == "none":
        return None
    python = sys.executable if choice == "auto" else choice
    probe = subprocess.run([python, "-c", "import ray, gymnasium; print(ray.__version__)"],
                           capture_output=True, text=True)
    return python if probe.returncode == 0 else None


def ray_version(python: str | None) -> str | None:
    if python is None:
        return None
    probe = subprocess.run([python, "-c", "import ray; print(ray.__version__)"], capture_output=True, text=True)
    return probe.stdout.strip() or None


def child(python: str, bench: str, system: str, count: int) -> dict:
    """One body in a child process (rl_bodies.py), with the load average around it."""
    before = loadavg()
    out = subprocess.run([python, str(BODIES), "--system", system, "--bench", bench, "--count", str(count)],
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    if out.returncode != 0:
        raise RuntimeError(f"{system} {bench} child failed: {out.stderr.strip().splitlines()[-1:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "loadavg": [before, loadavg()]}


def es_command(runs: str) -> dict:
    """`ownrun rl es` (CartPole-v1, defaults, seed 0) as a command; its wall time and summary."""
    ownrun = str(Path(sys.executable).with_name("ownrun"))
    before = loadavg()
    t = time.perf_counter()
    out = subprocess.run([ownrun, "rl", "es", "--env", "CartPole-v1", "--seed", "0", "--runs", runs],
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    command_s = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"ownrun rl es failed ({out.returncode}): {out.stderr.strip()[-300:]}")
    run_dir = next(line.split(":", 1)[1].strip() for line in out.stdout.splitlines()
                   if line.startswith("run directory:"))
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    return {"command_s": command_s, "wall_s": summary["wall_s"], "train_s": summary["train_s"],
            "iterations": summary["iterations"], "env_steps": summary["env_steps"],
            "reached": summary["reached"], "noise_table": summary["noise_table"],
            "phases": {**summary["phases"], "process_start_s": command_s - summary["wall_s"]},
            "loadavg": [before, loadavg()]}


def median(rounds: list[dict], key: str) -> float | None:
    values = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarize(rounds: dict[str, list[dict]]) -> dict:
    es, mine, ray, t4 = rounds["es"], rounds["tiny_ownrun"], rounds["tiny_ray"], rounds["table4"]
    out: dict = {}
    if es:
        out["es_cartpole"] = {"command_s": median(es, "command_s"), "wall_s": median(es, "wall_s"),
                              "train_s": median(es, "train_s"), "iterations": es[0]["iterations"],
                              "env_steps": es[0]["env_steps"], "reached": all(r["reached"] for r in es),
                              "target_s": 2.0}
        phases = [r["phases"] for r in es]
        # where the time went: the command's own start-up and shutdown (Python, imports, run
        # directory), engine start, table + owner + workers until the first iteration, iterations
        out["es_phases"] = {key: median(phases, key) for key in phases[0]}
        out["es_phases"]["table_made_s"] = median([r["noise_table"] for r in es], "made_s")
        noise = [r["noise_table"] for r in es]
        out["noise_table"] = {"mib": noise[0]["mib"], "nodes": noise[0]["nodes"],
                              "shared_s": median(noise, "shared_s"),
                              "store_growth_mib": median(noise, "store_growth_mib"),
                              "worker_private_mib": median(noise, "worker_private_mib")}
    if mine:
        out["tiny_tasks"] = {"ownrun_episodes_per_s": median(mine, "episodes_per_s"),
                             "serial_episodes_per_s": median(mine, "serial_episodes_per_s"),
                             "episode_ms": median(mine, "episode_ms"),
                             "ray_episodes_per_s": median(ray, "episodes_per_s") if ray else None}
        tiny = out["tiny_tasks"]
        tiny["ownrun_vs_ray"] = (tiny["ownrun_episodes_per_s"] / tiny["ray_episodes_per_s"]
                                 if tiny["ray_episodes_per_s"] else None)
    if t4:
        # each round's ratios (its three figures measured back to back), then their medians
        ratios = [{"vs_serial": r["gather_steps_per_s"] / r["serial_steps_per_s"],
                   "vs_barrier": r["gather_steps_per_s"] / r["barrier_steps_per_s"]} for r in t4]
        out["table4"] = {key: median(t4, key) for key in
                         ("serial_steps_per_s", "barrier_steps_per_s", "gather_steps_per_s")}
        out["table4"].update(gather_vs_serial=median(ratios, "vs_serial"),
                             gather_vs_barrier=median(ratios, "vs_barrier"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round, fewer tasks and episodes")
    parser.add_argument("--ray-python", default="auto",
                        help="interpreter for the Ray child: auto (this one, if it imports ray), none, or a path")
    parser.add_argument("--json", default=str(RESULTS_DIR / "rl.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 1
    episodes, tasks = (500, 40) if args.quick else (3000, 120)
    console = Console(highlight=False)
    run = meta.Run("rl")
    python_ray = ray_python(args.ray_python)
    if python_ray is None:
        console.print(f"Ray is not importable (--ray-python {args.ray_python}): the Ray column stays empty")
    rounds: dict[str, list[dict]] = {"es": [], "tiny_ownrun": [], "tiny_ray": [], "table4": []}
    errors: list[str] = []
    steps = [("es", lambda runs: es_command(runs)),
             ("tiny_ownrun", lambda _: child(sys.executable, "tiny", "ownrun", episodes)),
             ("tiny_ray", (lambda _: child(python_ray, "tiny", "ray", episodes)) if python_ray else None),
             ("table4", lambda _: child(sys.executable, "table4", "ownrun", tasks))]
    with tempfile.TemporaryDirectory() as runs:
        for k in range(args.rounds):
            for name, step in steps:
                if step is None:
                    continue
                console.print(f"round {k + 1}/{args.rounds}: {name} (load {loadavg():.1f}) ...")
                try:
                    rounds[name].append(step(runs))
                except Exception as exc:  # noqa: BLE001 - recorded, the other figures still run
                    errors.append(f"round {k + 1} {name}: {type(exc).__name__}: {exc}")
                    console.print(f"  [red]{errors[-1]}[/]")
    results = summarize(rounds)
    print_table(console, results, ray_version(python_ray))
    config = {"rounds": args.rounds, "quick": args.quick, "episodes": episodes, "tasks": tasks,
              "ray": ray_version(python_ray)}
    out = meta.write(run.document(config, results, rounds=rounds, errors=errors), Path(args.json))
    console.print(f"measured: {meta.describe(json.loads(out.read_text()))}")
    console.print(f"wrote {out}")
    return 1 if errors else 0


def print_table(console: Console, results: dict, ray: str | None) -> None:
    table = Table(title="ownrun rl benchmarks (medians over rounds)", show_header=True, header_style="bold")
    for column in ("benchmark", "ownrun", "target"):
        table.add_column(column, justify="right")
    for label, value, target in rows(results, ray):
        table.add_row(label, value, target)
    console.print(table)


def rows(results: dict, ray: str | None = None) -> list[tuple[str, str, str]]:
    """(benchmark, figure, target) for the console table; report.py renders the same results."""
    out = []
    es, noise = results.get("es_cartpole"), results.get("noise_table")
    if es:
        out.append(("ES CartPole-v1 to 475, 100 MB table: the command / engine start to target",
                    f"{es['command_s']:.2f} s / {es['wall_s']:.2f} s ({es['iterations']} iterations, "
                    f"{es['env_steps']:,} steps)", "<= 2 s"))
    tiny = results.get("tiny_tasks")
    if tiny:
        vs = f", {tiny['ownrun_vs_ray']:.1f}x Ray {ray or ''}" if tiny.get("ownrun_vs_ray") else ""
        out.append(("tiny tasks: one CartPole episode each",
                    f"{tiny['ownrun_episodes_per_s']:,.0f} episodes/s (Ray "
                    f"{(tiny['ray_episodes_per_s'] or 0):,.0f}{vs})", ">= 3x Ray"))
    t4 = results.get("table4")
    if t4:
        out.append(("Pendulum rollouts: serial / barrier / gather",
                    f"{t4['serial_steps_per_s']:,.0f} / {t4['barrier_steps_per_s']:,.0f} / "
                    f"{t4['gather_steps_per_s']:,.0f} steps/s ({t4['gather_vs_serial']:.2f}x serial, "
                    f"{t4['gather_vs_barrier']:.2f}x barrier)", ">= 1.6x serial, >= 1.2x barrier"))
    phases = results.get("es_phases")
    if phases:
        out.append(("  where it went: command start+exit / engine start / until 1st iteration "
                    "(table drawn at) / iterations",
                    f"{phases['process_start_s']:.2f} / {phases['engine_start_s']:.2f} / "
                    f"{phases['until_first_iteration_s']:.2f} ({phases['table_made_s']:.2f}) / "
                    f"{phases['iterations_s']:.2f} s", ""))
    if noise:
        out.append(("100 MB noise table: with every worker / store growth / private per worker",
                    f"{noise['shared_s']:.2f} s / {noise['store_growth_mib']:.0f} MiB on {noise['nodes']} node(s) / "
                    f"{noise['worker_private_mib'] or 0:.0f} MiB", "<= 1.2x table per node"))
    return out


if __name__ == "__main__":
    sys.exit(main())
