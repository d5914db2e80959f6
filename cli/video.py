"""`ownrun video`: online video stabilization, one owner per video (ownrun.apps.video).

`ownrun video --videos 60` runs on an embedded cluster with cached synthetic clips;
`ownrun video plot RUN_DIR...` draws the latency CDFs of finished runs into one PNG.
"""
from pathlib import Path
from typing import Annotated

import typer
from ownrun.cli.console import console
from typer.core import TyperGroup


class _VideoGroup(TyperGroup):
    """`ownrun video [OPTIONS] [--input A B ...]` or `ownrun video plot ...`: arguments that
    do not name a subcommand are more `--input` paths, and options may follow them."""

    allow_interspersed_args = True
    ignore_unknown_options = True  # a subcommand's options pass through; the callback rejects the rest

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        if ctx._protected_args and ctx._protected_args[0] not in self.commands:
            ctx.args = [*ctx._protected_args, *ctx.args]
            ctx._protected_args = []
        return rest


video_app = typer.Typer(
    cls=_VideoGroup,
    help="Stabilize videos online, frame by frame, with one owner task per video.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"--size must look like WIDTHxHEIGHT (e.g. 320x240), got {text!r}") from None
    if width < 32 or height < 32:
        raise typer.BadParameter(f"--size must be at least 32x32, got {text}")
    return width, height


@video_app.callback()
def video(
    ctx: typer.Context,
    videos: Annotated[int, typer.Option("--videos", min=1, help="Synthetic videos to process.")] = 60,
    fps: Annotated[float | None, typer.Option(
        "--fps", min=0.1, help="Frame rate of the real-time input (synthetic default 4; "
                               "inputs: the file's). The smoothing radius is r = fps frames.")] = None,
    frames: Annotated[int | None, typer.Option(
        "--frames", min=2, help="Frames per video (synthetic default 400, i.e. 100 s; inputs: the whole file).")] = None,
    size: Annotated[str, typer.Option("--size", help="Synthetic frame size WIDTHxHEIGHT; "
                                                      "320x240 grayscale (75 KiB) travels inline.")] = "320x240",
    inputs: Annotated[list[Path] | None, typer.Option(
        "--input", help="Video files to process instead of synthetic ones (repeatable; "
                        "extra paths after --input are taken too).")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", help="Write each stabilized video here as <video>.mp4 (default: none).")] = None,
    address: Annotated[str | None, typer.Option(
        "--address", help="Run on the cluster at HOST:PORT instead of an embedded one.")] = None,
    nodes: Annotated[int, typer.Option("--nodes", min=1, help="Nodes of the embedded cluster.")] = 1,
    num_cpus: Annotated[float | None, typer.Option("--num-cpus", help="CPUs per node (default: all).")] = None,
    metadata: Annotated[str, typer.Option(
        "--metadata", help="ownership, or centralized (the paper's baseline).")] = "ownership",
    by_value: Annotated[bool, typer.Option("--by-value", help="Pass every object by value.")] = False,
    checkpoint_interval: Annotated[int, typer.Option(
        "--checkpoint-interval", min=0, help="Checkpoint every K frames (0: off).")] = 0,
    fail: Annotated[str | None, typer.Option(
        "--fail", help="Inject a failure: decoder@10s, owner@10s or node@10s (node needs --nodes 2+).")] = None,
    runs: Annotated[Path, typer.Option("--runs", help="Where run directories go.")] = Path("runs"),
    no_live: Annotated[bool, typer.Option("--no-live", help="No live view while running.")] = False,
) -> None:
    """Stabilize videos online and report latency (`ownrun video --videos 60`)."""
    if ctx.invoked_subcommand is not None:
        return
    if metadata not in ("ownership", "centralized"):
        raise typer.BadParameter(f"--metadata must be ownership or centralized, got {metadata!r}")
    from ownrun.apps.video import failures, report, runner  # imports the engine: keep --help fast

    if fail:
        try:
            failures.FailurePlan.parse(fail)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    unknown = [a for a in ctx.args if a.startswith("-")]
    if unknown:
        raise typer.BadParameter(f"no such option: {unknown[0]}")
    paths = [str(p) for p in (inputs or [])] + list(ctx.args)
    opts = runner.VideoOptions(
        videos=videos, fps=fps, frames=frames, size=_size(size), inputs=paths,
        output=str(output) if output else None, address=address, nodes=nodes, num_cpus=num_cpus,
        metadata=metadata, by_value=by_value, checkpoint_interval=checkpoint_interval, fail=fail,
        runs_dir=str(runs), live=not no_live)
    result = runner.run(opts, console)
    console.print(report.summary_table(result.summary))
    console.print(f"run directory: {result.run_dir}")
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
