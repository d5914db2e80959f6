"""`ownrun status`: the head's view of a running cluster, as a table that fits 80 columns.

The owners column counts the processes registered on each node (drivers and workers: each
owns the objects and tasks it creates). It reads the node view's `clients` (a list of
addresses or a count); a head that does not report them shows "-". An embedded cluster's
nodes all sit at unix sockets of its session directory (in the title): no address column. Below the table: the stores' total, which on one machine is what the nodes can
hold together (an embedded cluster splits its default among its nodes).
"""
import os
from typing import Annotated

import typer
from ownrun.cli.console import console
from ownrun.cli.start import KEY_HELP, QUERY_ADDRESS_HELP, check_key, check_query_address
from rich.table import Table


def status(
    address: Annotated[str | None, typer.Option(
        "--address", callback=check_query_address, help=QUERY_ADDRESS_HELP)] = None,
    cluster_key: Annotated[str | None, typer.Option("--cluster-key", envvar="OWNRUN_CLUSTER_KEY",
                                                    callback=check_key, help=KEY_HELP)] = None,
) -> None:
    """Show the nodes of a running cluster: owners, CPUs, stores, and the head's request count."""
    from ownrun.engine.cluster import started

    info = started.status(address, cluster_key)
    table = Table(title=f"ownrun cluster at {info['address']}", title_justify="left",
                  caption="owners: drivers and workers on the node; CPU and custom resources: "
                          "available/total; store: used/capacity",
                  caption_justify="left")
    # An embedded cluster's nodes are all on this machine, at sockets of its session: no column.
    show_address = not all(node["address"].startswith("ipc://") for node in info["nodes"])
    columns = ("node", "address", "alive", "owners", "CPU", "custom", "store MiB", "objects")
    for column in columns if show_address else [c for c in columns if c != "address"]:
        table.add_column(column, no_wrap=column not in ("address", "custom"), overflow="fold")
    capacity = used = 0
    for node in info["nodes"]:
        total, available, store = node["total"], node["available"], node.get("store") or {}
        custom = ", ".join(f"{k}={available.get(k, 0):g}/{v:g}" for k, v in sorted(total.items()) if k != "CPU")
        if node["alive"]:
            capacity += store.get("capacity") or 0
            used += store.get("used") or 0
        table.add_row(node["node_id"], *([_address(node["address"])] if show_address else []),
                      "[green]yes[/]" if node["alive"] else "[red]dead[/]", _owners(node),
                      f"{available.get('CPU', 0):g}/{total.get('CPU', 0):g}", custom or "-",
                      f"{_mib(store.get('used'), 0)}/{_mib(store.get('capacity'), 0)}",
                      str(store.get("num_objects", "-")))
    console.print(table)
    alive = sum(1 for node in info["nodes"] if node["alive"])
    console.print(f"{alive} alive node(s) of {len(info['nodes'])}; stores of the live nodes: "
                  f"{_mib(used)} of {_mib(capacity)} MiB used; head requests served: "
                  f"{info['head'].get('requests', 0)}")


def _address(address: str) -> str:
    if address.startswith("ipc://"):
        return "ipc " + os.path.basename(address)  # a socket of the session directory
    return address.removeprefix("tcp://")


def _owners(node: dict) -> str:
    clients = node.get("clients", node.get("owners"))
    if isinstance(clients, (list, tuple, set)):
        return str(len(clients))
    return str(clients) if isinstance(clients, int) else "-"


def _mib(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value / 2**20:.{digits}f}"


def register(app: typer.Typer) -> None:
    app.command("status")(status)
