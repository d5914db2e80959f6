"""`ownrun bench`: runs the microbenchmarks of ownrun.apps.bench.micro."""
from pathlib import Path
from typing import Annotated

import typer
from ownrun.apps.bench import DEFAULT_JSON
from ownrun.cli.console import console


def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="About 10x smaller counts, for smoke tests.")
    ] = False,
    json_path: Annotated[Path, typer.Option("--json", help="Write results (JSON) here.")] = DEFAULT_JSON,
) -> None:
    """Run the engine microbenchmarks and compare them with their targets and with Ray."""
    from ownrun.apps.bench import micro  # imports the engine: keep `ownrun --help` fast

    code = micro.main(quick=quick, json_path=json_path, console=console)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
