"""`ownrun rl`: RL rollouts on actors (ownrun.apps.rl): `es`, `ppo` and `plot`.

The options of `es` and `ppo` are not written here: they are generated from the pydantic
models in ownrun.apps.rl.config (one definition serves the CLI and `[app.rl]` tables of job
files), every flag defaulting to "unset" so the model's defaults (and PPO's per-env tuned
values) apply. A model's validation error becomes one line and exit code 2.
"""
import inspect
import types
import typing
from pathlib import Path
from typing import Annotated

import typer
from ownrun.cli.console import console

rl_app = typer.Typer(help="RL rollouts on actors: evolution strategies and PPO-style collection.",
                     no_args_is_help=True)


def _flag_type(annotation):
    """The Typer type of a model field: the non-None member of `X | None`; Literal -> str."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Literal:
        return str
    return annotation


def _help(field) -> str:
    from rich.markup import escape

    text = field.description or ""
    if field.default is not None and not isinstance(field.default, bool):
        text += f" [default: {field.default}]"
    return escape(text)


def _parameters(model) -> list[inspect.Parameter]:
    params = []
    for name, field in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        kind = _flag_type(field.annotation)
        decls = [f"{flag}/--no-{name.replace('_', '-')}"] if kind is bool else [flag]
        option = typer.Option(*decls, help=_help(field), show_default=False)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[kind | None, option]))
    return params


def build_config(model, values: dict):
    """The validated config from the flags given (None: not given); BadParameter on error."""
    from ownrun.apps.rl.config import first_error
    from pydantic import ValidationError

    try:
        return model(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise typer.BadParameter(first_error(exc)) from None


def _command(name: str, model_name: str, runner_name: str, doc: str):
    def command(**values) -> None:
        from ownrun.apps.rl import config as config_module
        from ownrun.apps.rl import report, runner

        config = build_config(getattr(config_module, model_name), values)
        summary = getattr(runner, runner_name)(config, console)
        console.print(report.summary_table(summary))
        console.print(f"run directory: {summary['run_dir']}")

    command.__name__ = name
    command.__doc__ = doc
    from ownrun.apps.rl import config as config_module  # pydantic + stdlib only: cheap

    command.__signature__ = inspect.Signature(_parameters(getattr(config_module, model_name)))
    rl_app.command(name)(command)


_command("es", "EsConfig", "run_es",
         "Evolution strategies with a shared noise table (e.g. `ownrun rl es --env CartPole-v1`).")
_command("ppo", "PpoConfig", "run_ppo",
         "PPO-style rollout collection and training (e.g. `ownrun rl ppo --env Pendulum-v1`).")


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
