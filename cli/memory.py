"""`ownrun memory`: the objects of a running cluster by owner, the node holding them and —
with OWNRUN_RECORD_CALLSITES=1 set where the cluster and its drivers started — the call
site that created them, with counts, bytes and how many are pinned; then each node's store:
used, capacity, pinned and spilled (engine/util/state.py `memory_report`)."""
from typing import Annotated

import typer
from ownrun.cli.console import console
from ownrun.cli.state import Address, Format, Key, emit_json, print_rows


def _mib(value) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def memory(
    output: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
    address: Address = None,
    cluster_key: Key = None,
) -> None:
    """Show the objects of a running cluster by owner, node and call site, and each node's store."""
    from ownrun.engine.util import state

    report = state.memory_report(address, cluster_key)
    if output is Format.json:
        emit_json(report)
        return
    groups = report["groups"]
    if not any(group["callsite"] for group in groups):  # not recorded: OWNRUN_RECORD_CALLSITES unset
        groups = [{k: v for k, v in group.items() if k != "callsite"} for group in groups]
    print_rows(f"objects by owner and node ({len(groups)} group(s))", groups)
    total = sum(group["bytes"] for group in groups)
    console.print(f"{sum(g['objects'] for g in groups)} object(s), {total / 2**20:.1f} MiB")
    print_rows("object stores (MiB)", [
        {"node_id": n["node_id"], "alive": n["alive"], "used": _mib(n["store_used"]),
         "capacity": _mib(n["store_capacity"]), "pinned": _mib(n["store_pinned"]),
         "spilled": _mib(n["store_spilled"]), "spilled objects": n["spilled_objects"]}
        for n in report["nodes"]])
    if report["unreachable"]:
        console.print(f"{len(report['unreachable'])} process(es) did not answer")


def register(app: typer.Typer) -> None:
    app.command("memory")(memory)
