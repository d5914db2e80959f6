"""What an RL run reports: the run directory, the summary table and learning-curve plots.

Owns the layout of a run directory (as `ownrun video`'s: `summary.json` plus one CSV,
here `iterations.csv` with one row per finished iteration of every owner attempt, so
iterations an owner redid after a failure appear twice with different `attempt`s), the Rich
summary table, failure figures derived from the rows (`failure_effect`) and
`plot_curves` (`ownrun rl plot`): mean return vs env steps and vs wall time, one line per
run, failures marked. Pure functions on rows and files; runs nothing on the engine.
Thread-safe. Failures: OSError from the file system; `load_run` raises FileNotFoundError
for a directory that is not a run directory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import plots
from ..run_dir import SUMMARY, write_summary

CSV_FILE = "iterations.csv"


def write_run(run_dir: Path, summary: dict, rows: list[dict]) -> None:
    write_summary(run_dir, summary)
    columns = list(rows[0]) if rows else ["iteration"]
    with open(run_dir / CSV_FILE, "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        out.writeheader()
        for row in rows:
            out.writerow({k: (repr(round(v, 6)) if isinstance(v, float) else v) for k, v in row.items()})  # ts: epoch seconds


def load_run(run_dir: Path) -> tuple[dict, list[dict]]:
    run_dir = Path(run_dir)
    if not (run_dir / SUMMARY).exists() or not (run_dir / CSV_FILE).exists():
        raise FileNotFoundError(2, f"not an RL run directory (no {SUMMARY}/{CSV_FILE})", str(run_dir))
    summary = json.loads((run_dir / SUMMARY).read_text())
    with open(run_dir / CSV_FILE, newline="") as f:
        rows = [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(f)]
    return summary, rows


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def failure_effect(event: dict, rows: list[dict]) -> dict:
    """Adds to a failure event what it cost, from the iteration rows:

    * worker/node: the iteration in progress when it fired (the first to end after it), its
      duration and its delay over the median duration of the others;
    * owner: the last iteration finished before the kill, the iteration the re-run owner
      resumed after, how many it redid, and the time from the kill to the first new one."""
    out = dict(event)
    ts = event.get("ts")
    if ts is None or not rows:
        return out
    after = [r for r in rows if r["ts"] >= ts]
    if event["kind"] == "owner":
        before = [r for r in rows if r["ts"] < ts]
        last = max((r["iteration"] for r in before), default=0)
        rerun = [r for r in after if r["attempt"] > max((b["attempt"] for b in before), default=1)]
        if rerun:
            resumed = rerun[0]["iteration"] - 1
            beyond = [r for r in rerun if r["iteration"] > last]
            out.update(last_iteration_before=last, resumed_after_iteration=resumed,
                       iterations_redone=last - resumed,
                       recovered_after_s=round(beyond[0]["ts"] - ts, 3) if beyond else None)
        return out
    if after:
        hit = after[0]
        others = [r["duration_s"] for r in rows if r is not hit]
        median = float(np.median(others)) if others else 0.0
        out.update(iteration=hit["iteration"], iteration_s=round(hit["duration_s"], 3),
                   median_iteration_s=round(median, 3), delay_s=round(hit["duration_s"] - median, 3))
    return out


# ---- presentation --------------------------------------------------------------------------
def summary_table(summary: dict, title: str | None = None):
    from rich.table import Table

    table = Table(title=title or f"ownrun rl {summary['algorithm']}", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    target = summary.get("target")
    table.add_row("env", summary["env"])
    table.add_row("reached target", ("[green]yes[/]" if summary["reached"] else "[red]no[/]")
                  + (f" ({target:g})" if target is not None else ""))
    table.add_row("final mean return", f"{summary['final_return']:.1f}" if summary["final_return"] is not None else "-")
    table.add_row("iterations", str(summary["iterations"]))
    table.add_row("env steps", f"{summary['env_steps']:,}")
    table.add_row("env steps/s", f"{summary['steps_per_s']:,.0f}")
    table.add_row("training time", f"{summary['train_s']:.2f} s")
    table.add_row("wall time (incl. cluster start)", f"{summary['wall_s']:.2f} s")
    table.add_row("rollout workers", str(summary["workers"]))
    noise = summary.get("noise_table")
    if noise:
        private = noise.get("worker_private_mib")
        table.add_row("noise table", f"{noise['mib']:.0f} MiB, with every worker in {noise['shared_s']:.2f} s; "
                      f"store +{noise['store_growth_mib']:.0f} MiB on {noise['nodes']} node(s)"
                      + (f"; {private:.0f} MiB private per worker" if private is not None else ""))
    for f in summary.get("failures", []):
        table.add_row(f"failure {f['kind']}@{f['at_s']:g}s", _failure_text(f))
    table.add_row("owner attempts", str(summary["owner_attempts"]))
    return table


def _failure_text(f: dict) -> str:
    if f.get("error"):
        return f"[red]{f['error']}[/]"
    if f["kind"] == "owner":
        if "iterations_redone" not in f:
            return f"{f.get('target', '')}: not re-run"
        return (f"resumed after iteration {f['resumed_after_iteration']} (last done {f['last_iteration_before']}); "
                f"redid {f['iterations_redone']}; back in {f.get('recovered_after_s')} s")
    if "delay_s" in f:
        return (f"{f.get('target', '')}: iteration {f['iteration']} took {f['iteration_s']:.2f} s "
                f"(+{f['delay_s']:.2f} s over the median)")
    return f.get("target", "")


def run_label(summary: dict, run_dir: Path | None = None) -> str:
    c = summary.get("config", {})
    parts = [summary["algorithm"], summary["env"]]
    if c.get("sync"):
        parts.append("sync")
    if c.get("checkpoint_every"):
        parts.append(f"CP{c['checkpoint_every']}")
    if c.get("fail"):
        parts.append(f"fail {c['fail']}")
    label = " ".join(parts)
    return f"{label} ({run_dir.name})" if run_dir is not None else label


def plot_curves(run_dirs: Sequence[Path], out_png: Path) -> Path:
    """Mean return vs env steps and vs wall time, one line per run; failures as vertical marks."""
    fig, (by_steps, by_time) = plots.two_panels(len(run_dirs))
    for run_dir in run_dirs:
        summary, rows = load_run(Path(run_dir))
        if not rows:
            continue
        steps = [r["env_steps"] for r in rows]
        elapsed = [r["elapsed_s"] for r in rows]
        returns = [r["mean_return"] if summary["algorithm"] == "ppo" else r["eval_return"] for r in rows]
        (line,) = by_steps.plot(steps, returns, label=run_label(summary, Path(run_dir)), marker=".", markersize=3)
        by_time.plot(elapsed, returns, color=line.get_color(), marker=".", markersize=3)
        for f in summary.get("failures", []):
            if f.get("ts") is None:
                continue
            at = f["ts"] - summary["start_ts"]
            by_time.axvline(at, color=line.get_color(), linestyle="--", alpha=0.6)
            before = [r["env_steps"] for r in rows if r["ts"] <= f["ts"]]
            if before:
                by_steps.axvline(before[-1], color=line.get_color(), linestyle="--", alpha=0.6)
    for ax, xlabel in ((by_steps, "env steps"), (by_time, "wall time since start (s)")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean return")
        ax.grid(alpha=0.3)
    by_steps.set_title("return vs env steps (dashed: failures)")
    by_time.set_title("return vs wall time")
    return plots.save(fig, by_steps, out_png)
