"""The `ownrun` command line: a tiny root that registers one module per command group.

Commands parse arguments and call library code; errors become one line and an exit code
in cli/errors.py.
"""
from typing import Annotated

import typer
from ownrun.cli import (
    bench,
    kill_node,
    logs,
    memory,
    rl,
    run,
    start,
    state,
    status,
    stop,
    timeline,
    version,
    video,
)
from ownrun.cli.console import console
from ownrun.cli.errors import RootGroup

app = typer.Typer(
    name="ownrun",
    cls=RootGroup,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", envvar="OWNRUN_DEBUG", help="Show tracebacks of errors.")
    ] = False,
) -> None:
    """ownrun: a distributed-futures runtime built on ownership, and its job runner."""
    if ctx.invoked_subcommand is None:
        text = ctx.get_help()  # Typer's Rich help prints itself and returns ""
        if text:
            console.print(text)


for module in (bench, run, start, stop, status, state, memory, timeline, logs, kill_node, version, video, rl):
    module.register(app)

if __name__ == "__main__":
    app()
