"""`ownrun bench`: runs the microbenchmarks of ownrun.benchmarks.micro and/or the paper's
cluster benchmarks of ownrun.benchmarks.cluster (the top-level benchmarks/ folder)."""
import enum
from pathlib import Path
from typing import Annotated

import typer
from ownrun.benchmarks import DEFAULT_JSON
from ownrun.cli.console import console


class Suite(enum.StrEnum):
    micro = "micro"
    cluster = "cluster"
    all = "all"


def _json_paths(suites: list[str], json_path: Path | None,
                defaults: dict[str, Path]) -> dict[str, Path]:
    """Where each suite writes: its default file, or `json_path` (with `all`, the cluster
    suite writes next to it, as <stem>-cluster<suffix>)."""
    if json_path is None:
        return {suite: defaults[suite] for suite in suites}
    if len(suites) == 1:
        return {suites[0]: json_path}
    return {"micro": json_path,
            "cluster": json_path.with_name(f"{json_path.stem}-cluster{json_path.suffix}")}


def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="About 10x smaller counts, for smoke tests.")
    ] = False,
    suite: Annotated[
        Suite, typer.Option("--suite", help="micro: the API microbenchmarks with their "
                            "targets; cluster: the paper's latency, borrowing, recovery "
                            "and scaling benchmarks; all: both.")
    ] = Suite.micro,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write results (JSON) here; default "
                                  "bench-results/<suite>.json. With --suite all, the cluster "
                                  "results go next to it as <stem>-cluster.json.")
    ] = None,
    background_load: Annotated[
        int, typer.Option("--background-load", min=0, metavar="N",
                          help="micro: also measure the latency rows with N busy-loop "
                               "processes running (on a VM, an idle machine can make "
                               "cross-process wake-ups slower).")
    ] = 0,
) -> None:
    """Run the engine benchmarks and compare them with their targets and the paper (Ray's
    figures: python benchmarks/compare.py --with ray)."""
    suites = ["micro", "cluster"] if suite is Suite.all else [suite.value]
    # imported here: they import the engine, and `ownrun --help` should stay fast
    runs, defaults = {}, {}
    if "micro" in suites:
        from ownrun.benchmarks import micro

        runs["micro"], defaults["micro"] = micro.main, DEFAULT_JSON
    if "cluster" in suites:
        from ownrun.benchmarks import cluster

        runs["cluster"], defaults["cluster"] = cluster.main, cluster.DEFAULT_JSON
    paths = _json_paths(suites, json_path, defaults)
    extra = {"micro": {"background_load": background_load} if background_load else {},
             "cluster": {}}
    codes = [runs[name](quick=quick, json_path=paths[name], console=console, **extra[name])
             for name in suites]
    code = max(codes)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
