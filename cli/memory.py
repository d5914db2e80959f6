"""`ownrun memory`: the objects of a running cluster by owner and the node holding them,
with counts, bytes and how many are pinned (engine/util/state.py `memory`)."""
from typing import Annotated

import typer
from ownrun.cli.console import console
from ownrun.cli.state import Address, Format, Key, emit_json, print_rows


def memory(
    output: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
    address: Address = None,
    cluster_key: Key = None,
) -> None:
    """Show the objects of a running cluster by owner and node, with their sizes."""
    from ownrun.engine.util import state

    groups = state.memory(address, cluster_key)
    if output is Format.json:
        emit_json(groups)
        return
    print_rows(f"objects by owner and node ({len(groups)} group(s))", groups)
    total = sum(group["bytes"] for group in groups)
    console.print(f"{sum(g['objects'] for g in groups)} object(s), {total / 2**20:.1f} MiB")


def register(app: typer.Typer) -> None:
    app.command("memory")(memory)
