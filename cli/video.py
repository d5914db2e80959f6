"""`ownrun video`: online video stabilization, one owner per video (ownrun.apps.video).

`ownrun video --videos 60` runs on an embedded cluster with cached synthetic clips;
`ownrun video plot RUN_DIR...` draws the latency CDFs of finished runs into one PNG.
The flags are the fields of ownrun.apps.video.config.VideoConfig (cli/options.py), the same
definitions `[app.video]` tables of `ownrun run` job files are validated with.
"""
from pathlib import Path
from typing import Annotated

import typer
from ownrun.apps.video.config import VideoConfig
from ownrun.cli.console import console
from ownrun.cli.options import build, model_options
from ownrun.cli.start import check_address
from typer.core import TyperGroup


class _VideoGroup(TyperGroup):
    """`ownrun video [OPTIONS] [--input A B ...]` or `ownrun video plot ...`: arguments that
    do not name a subcommand are more `--input` paths, and options may follow them."""

    allow_interspersed_args = True
    ignore_unknown_options = True  # a subcommand's options pass through; the callback rejects the rest

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if self._subcommand_at(args) is not None:
            # `video plot --help`: stop at the subcommand, so its options (and --help) are its own
            ctx.allow_interspersed_args = False
        rest = super().parse_args(ctx, args)
        if ctx._protected_args and ctx._protected_args[0] not in self.commands:
            ctx.args = [*ctx._protected_args, *ctx.args]
            ctx._protected_args = []
        return rest

    def _subcommand_at(self, args: list[str]) -> int | None:
        """Index of the first argument naming a subcommand (not the value of an option)."""
        takes_value = {opt for p in self.params if not getattr(p, "is_flag", False)
                       for opt in getattr(p, "opts", ())}
        for k, arg in enumerate(args):
            if arg == "--":
                return None
            if arg in self.commands and not (k and args[k - 1] in takes_value):
                return k
        return None


video_app = typer.Typer(
    cls=_VideoGroup,
    help="Stabilize videos online, frame by frame, with one owner task per video.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@video_app.callback()
@model_options(VideoConfig)
def video(ctx: typer.Context, options: dict) -> None:
    """Stabilize videos online and report latency (`ownrun video --videos 60`)."""
    if ctx.invoked_subcommand is not None:
        return
    unknown = [a for a in ctx.args if a.startswith("-")]
    if unknown:
        raise typer.BadParameter(f"no such option: {unknown[0]}")
    options["input"] = [*options["input"], *ctx.args]
    try:
        check_address(options["address"])
    except typer.BadParameter as exc:
        exc.param_hint = "'--address'"
        raise
    config = build(VideoConfig, options)
    from ownrun.apps.video import report, runner  # imports the engine: keep --help fast

    result = runner.run(runner.VideoOptions(**config.model_dump()), console)
    console.print(report.summary_table(result.summary))
    console.print(f"run directory: {result.run_dir}")
    if result.summary.get("timeline"):
        console.print(f"timeline: {result.summary['timeline']} (open it in ui.perfetto.dev)")
    if result.errors:
        raise typer.Exit(1)


@video_app.command("plot")
def plot(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories (from `ownrun video`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("runs/latency-cdf.png"),
) -> None:
    """Draw the latency CDFs of several runs into one PNG."""
    from ownrun.apps.video import report

    for run_dir in run_dirs:
        if not (run_dir / "summary.json").exists() or not (run_dir / "frames.csv").exists():
            raise FileNotFoundError(2, "not a run directory (no summary.json/frames.csv)", str(run_dir))
    path = report.plot_cdfs(run_dirs, out)
    console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(video_app, name="video")
