"""The `ownrun` command line: a tiny root that loads one module per command group, lazily.

Commands parse arguments and call library code; errors become one line and an exit code
in cli/errors.py. `COMMANDS` names the module (`ownrun.cli.<module>`, whose `register(app)`
adds the command) of each top-level command: a command's module is imported only when that
command runs or a help lists it (`ownrun --help` imports them all), so `ownrun rl es` does not
pay for the imports of `ownrun video`, `bench` or `logs`.
"""
import importlib
from typing import Annotated, Any

import typer
from ownrun.cli.console import console
from ownrun.cli.errors import RootGroup

# command -> module under ownrun.cli, in the order `ownrun --help` lists them
COMMANDS = {
    "bench": "bench", "run": "run", "start": "start", "stop": "stop", "status": "status",
    "list": "state", "summary": "state", "memory": "memory", "timeline": "timeline", "logs": "logs",
    "kill-node": "kill_node", "version": "version", "runs": "run", "video": "video", "rl": "rl",
}


class LazyRootGroup(RootGroup):
    """The root group: the commands of `COMMANDS` are built from their module on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands.update(load(COMMANDS[cmd_name]))
        return self.commands.get(cmd_name)


def load(module_name: str) -> dict:
    """The Click commands `ownrun.cli.<module_name>` registers, by name."""
    module = importlib.import_module(f"ownrun.cli.{module_name}")
    holder = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    holder.callback()(lambda: None)  # a group even when the module registers one command
    module.register(holder)
    return dict(typer.main.get_command(holder).commands)


app = typer.Typer(
    name="ownrun",
    cls=LazyRootGroup,
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


if __name__ == "__main__":
    app()
