"""`ownrun version`: the installed package version."""
import importlib.metadata

import typer
from ownrun.cli.console import console


def version() -> None:
    """Print the ownrun version."""
    try:
        number = importlib.metadata.version("ownrun")
    except importlib.metadata.PackageNotFoundError:
        number = "unknown (not installed)"
    console.print(f"ownrun {number}")


def register(app: typer.Typer) -> None:
    app.command("version")(version)
