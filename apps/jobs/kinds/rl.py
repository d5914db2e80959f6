"""`kind = "rl"`: `[app.rl]` holds the options of `ownrun rl es|ppo`, chosen by `algo`.

    [app.rl]
    algo = "es"            # or "ppo"
    env = "CartPole-v1"
    noise_size = 1_000_000

`algo = "es"` (the default) validates the table with EsConfig, `"ppo"` with PpoConfig
(apps/rl/config.py: the models `ownrun rl es|ppo` build their flags from, so each option is
defined once); a matrix may vary `algo` like any other key. The job sets the cluster options
(`nodes`, `num_cpus`) from `[cluster]`, turns the live view off and gives each run its folder
(`runs` unused). Checks before the job starts: a failure (`fail`) needs a cluster of its own
(`[job] fresh_cluster = true`), and a node failure an embedded one. In the run's driver
process, `run` is `ownrun rl es|ppo` without the terminal: the run folder gets summary.json and
iterations.csv; the job's overlay plot draws every run's learning curves.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from ownrun.apps.rl.config import EsConfig, PpoConfig  # pydantic + stdlib only: cheap
from pydantic import BaseModel, Field

from . import AppKind, RunContext

_ALGO_HELP = "es (evolution strategies) or ppo (PPO-style collection and training)."


class EsJob(EsConfig):
    """`[app.rl]` with algo = "es"."""

    algo: Literal["es", "ppo"] = Field("es", description=_ALGO_HELP)


class PpoJob(PpoConfig):
    """`[app.rl]` with algo = "ppo"."""

    algo: Literal["es", "ppo"] = Field("ppo", description=_ALGO_HELP)


MODELS: dict[str, type[BaseModel]] = {"es": EsJob, "ppo": PpoJob}


def model_of(algo) -> type[BaseModel]:
    """The model of `algo` (the ES one for anything else: its `algo` field reports the value)."""
    return MODELS.get(algo, EsJob) if isinstance(algo, str) else EsJob


def _check(config, ctx: RunContext) -> list:
    plan = config.failure_plan
    if plan is None:
        return []
    if not ctx.fresh_cluster:
        where = "a running cluster" if ctx.cluster.get("address") else "the job's shared cluster"
        return [(("fail",), f"needs a cluster of its own: set [job] fresh_cluster = true (on {where} "
                            f"a failure would hit the other runs)")]
    if plan.kind == "node" and ctx.cluster.get("address"):
        return [(("fail",), "a node failure needs an embedded cluster (no cluster.address)")]
    return []


def run(config, cluster: dict, run_dir: Path, console) -> dict:
    """One ES or PPO run into `run_dir`."""
    from ownrun.apps.rl import report, runner

    engine_options = {k: cluster[k] for k in ("address", "node_death_timeout", "object_store_memory")
                      if cluster.get(k) is not None}
    if config.algo == "es":
        train, app_config = runner.run_es, EsConfig(**config.model_dump(exclude={"algo"}))
    else:
        train, app_config = runner.run_ppo, PpoConfig(**config.model_dump(exclude={"algo"}))
    summary = train(app_config, console, run_dir=run_dir, engine_options=engine_options)
    console.print(report.summary_table(summary))
    return summary


def plot_learning_curves(folders: list[Path], out: Path) -> Path | None:
    from ownrun.apps.rl import report

    runs = [f for f in folders if (f / "summary.json").exists() and (f / report.CSV_FILE).exists()]
    return report.plot_curves(runs, out) if runs else None


KIND = AppKind(
    name="rl",
    model=lambda: model_of("es"),
    variant=lambda options: model_of(options.get("algo", "es")),
    runner="ownrun.apps.jobs.kinds.rl:run",
    managed={"nodes": lambda ctx: ctx.cluster.get("nodes", 1), "num_cpus": lambda ctx: ctx.cluster.get("num_cpus"),
             "live": lambda ctx: False, "runs": lambda ctx: "runs"},  # unused: each run writes into its own folder
    check=_check,
    summary_fields=("reached", "final_return", "iterations", "env_steps", "steps_per_s", "train_s",
                    "owner_attempts", "all_exact", "failures.0.delay_s"),
    summary_keys=("algorithm", "env", "config", "target", "reached", "final_return", "best_return", "iterations",
                  "env_steps", "steps_per_s", "train_s", "wall_s", "start_ts", "workers", "owner_attempts",
                  "resumed_from", "all_exact", "failures", "noise_table", "autograd_in_workers", "run_dir"),
    plots={"learning_curves": "ownrun.apps.jobs.kinds.rl:plot_learning_curves"},
    default_plot="learning_curves",
)
