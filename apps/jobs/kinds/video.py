"""`kind = "video"`: `[app.video]` holds the options of `ownrun video` (VideoConfig).

The job sets the cluster options (`address`, `nodes`, `num_cpus`) from `[cluster]`, turns the
live view off and gives each run its folder (`runs_dir` unused); the app table may not set them. Checks before the job starts: input files
exist, and settings the workers take from their node daemons (`metadata`, `by_value`) or that
kill processes (`fail`) get a cluster of their own (`[job] fresh_cluster = true`): on a
shared cluster they would be silently half-applied. In the run's driver process, `run` is
`ownrun video` without the terminal: the run folder gets summary.json and frames.csv.
"""
from __future__ import annotations

from pathlib import Path

from . import AppKind, RunContext


def _model():
    from ownrun.apps.video.config import VideoConfig

    return VideoConfig


def _check(config, ctx: RunContext) -> list:
    problems = []
    if not ctx.fresh_cluster:
        where = "a running cluster" if ctx.cluster.get("address") else "the job's shared cluster"
        for key, given in (("metadata", config.metadata != "ownership"), ("by_value", config.by_value),
                           ("fail", config.fail is not None)):
            if given:
                problems.append(((key,), f"needs a cluster of its own: set [job] fresh_cluster = true "
                                          f"(on {where} the workers keep the cluster's settings and a failure "
                                          f"would hit the other runs)"))
    for k, path in enumerate(config.input):
        if not (ctx.base_dir / path).exists():
            problems.append((("input", k), f"no such file: {path}"))
    return problems


def run(config, cluster: dict, run_dir: Path, console) -> dict:
    """One video run into `run_dir`; raises RuntimeError naming the videos that failed."""
    from ownrun.apps.video import report, runner

    extra = {k: cluster[k] for k in ("object_store_memory", "node_death_timeout") if cluster.get(k) is not None}
    opts = runner.VideoOptions(**{**config.model_dump(), "live": False, "run_dir": str(run_dir)}, **extra)
    result = runner.run(opts, console)
    console.print(report.summary_table(result.summary))
    if result.errors:
        raise RuntimeError(f"{len(result.errors)} video(s) failed: {result.errors[0]}")
    return result.summary


def plot_latency_cdf(folders: list[Path], out: Path) -> Path | None:
    from ownrun.apps.video import report

    runs = [f for f in folders if (f / "summary.json").exists() and (f / "frames.csv").exists()]
    return report.plot_cdfs(runs, out) if runs else None


KIND = AppKind(
    name="video",
    model=_model,
    runner="ownrun.apps.jobs.kinds.video:run",
    managed={"address": lambda ctx: ctx.cluster.get("address"), "nodes": lambda ctx: ctx.cluster.get("nodes", 1),
             "num_cpus": lambda ctx: ctx.cluster.get("num_cpus"), "live": lambda ctx: False,
             "runs_dir": lambda ctx: "runs"},  # unused: each run writes into its own folder
    check=_check,
    summary_fields=("latency_above_floor_s.p50", "latency_above_floor_s.p99", "latency_above_floor_s.max",
                    "frames_delivered", "frames_expected", "tasks_per_s", "kept_up",
                    "failures.0.spike_max_above_floor_s"),
    summary_keys=("config", "start_ts", "videos", "frames_expected", "frames_delivered", "latency_above_floor_s",
                  "frames_per_s", "target_frames_per_s", "tasks_per_s", "duration_s", "kept_up", "failures",
                  "residual_jitter", "per_video"),
    plots={"latency_cdf": "ownrun.apps.jobs.kinds.video:plot_latency_cdf"},
    default_plot="latency_cdf",
)
