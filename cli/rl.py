"""`ownrun rl`: RL rollouts on actors (ownrun.apps.rl): `es`, `ppo` and `plot`.

The options of `es` and `ppo` are not written here: cli/options.py generates them from the
pydantic models in ownrun.apps.rl.config (one definition serves the CLI and `[app.rl]` tables
of job files), every flag defaulting to "unset" so the model's defaults (and PPO's per-env
tuned values) apply. A model's validation error becomes one line and exit code 2.
"""
from pathlib import Path
from typing import Annotated

import typer
from ownrun.apps.rl.config import EsConfig, PpoConfig  # pydantic + stdlib only: cheap
from ownrun.cli.console import console
from ownrun.cli.options import build, model_options

rl_app = typer.Typer(help="RL rollouts on actors: evolution strategies and PPO-style collection.",
                     no_args_is_help=True)


def _run(model, options: dict, runner_name: str) -> None:
    config = build(model, options, drop_unset=True)
    from ownrun.apps.rl import report, runner  # imports the engine: keep --help fast

    summary = getattr(runner, runner_name)(config, console)
    console.print(report.summary_table(summary))
    console.print(f"run directory: {summary['run_dir']}")
    if summary.get("timeline"):
        console.print(f"timeline: {summary['timeline']} (open it in ui.perfetto.dev)")


@rl_app.command("es")
@model_options(EsConfig, unset=True)
def es(options: dict) -> None:
    """Evolution strategies with a shared noise table (e.g. `ownrun rl es --env CartPole-v1`)."""
    _run(EsConfig, options, "run_es")


@rl_app.command("ppo")
@model_options(PpoConfig, unset=True)
def ppo(options: dict) -> None:
    """PPO-style rollout collection and training (e.g. `ownrun rl ppo --env Pendulum-v1`)."""
    _run(PpoConfig, options, "run_ppo")


@rl_app.command("plot")
def plot(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories (from `ownrun rl es|ppo`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("runs/rl-curves.png"),
) -> None:
    """Draw learning curves (return vs env steps and vs wall time) of several runs into one PNG."""
    from ownrun.apps.rl import report

    for run_dir in run_dirs:
        report.load_run(run_dir)  # FileNotFoundError (exit 5) for a directory that is not a run
    path = report.plot_curves(run_dirs, out)
    console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(rl_app, name="rl")
