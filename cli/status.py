"""`ownrun status`: the head's view of a running cluster, as a table.

The owners column counts the processes registered on each node (drivers and workers: each
owns the objects and tasks it creates). It reads the node view's `clients` (a list of
addresses or a count); a head that does not report them shows "-".
"""
from typing import Annotated

import typer
from ownrun.cli.console import console
from ownrun.cli.start import KEY_HELP, check_address, check_key
from rich.table import Table


def status(
    address: Annotated[str | None, typer.Option(
        "--address", callback=check_address,
        help="HOST:PORT of the head (default: the cluster started from this machine).")] = None,
    cluster_key: Annotated[str | None, typer.Option("--cluster-key", envvar="OWNRUN_CLUSTER_KEY",
                                                    callback=check_key, help=KEY_HELP)] = None,
) -> None:
    """Show the nodes of a running cluster and the head's request count."""
    from ownrun.engine.cluster import started

    info = started.status(address, cluster_key)
    table = Table(title=f"ownrun cluster at {info['address']}", title_justify="left",
                  caption="owners: drivers and workers on the node; CPU and custom resources: "
                          "available/total; store: used/capacity",
                  caption_justify="left")
    for column in ("node", "address", "alive", "owners", "CPU", "custom", "store MiB", "objects"):
        table.add_column(column, no_wrap=column in ("node", "address"))
    for node in info["nodes"]:
        total, available, store = node["total"], node["available"], node.get("store") or {}
        custom = ", ".join(f"{k}={available.get(k, 0):g}/{v:g}" for k, v in sorted(total.items()) if k != "CPU")
        table.add_row(node["node_id"], node["address"].removeprefix("tcp://"),
                      "[green]yes[/]" if node["alive"] else "[red]dead[/]", _owners(node),
                      f"{available.get('CPU', 0):g}/{total.get('CPU', 0):g}", custom or "-",
                      f"{_mib(store.get('used'))}/{_mib(store.get('capacity'))}",
                      str(store.get("num_objects", "-")))
    console.print(table)
    alive = sum(1 for node in info["nodes"] if node["alive"])
    console.print(f"{alive} alive node(s) of {len(info['nodes'])}; "
                  f"head requests served: {info['head'].get('requests', 0)}")


def _owners(node: dict) -> str:
    clients = node.get("clients", node.get("owners"))
    if isinstance(clients, (list, tuple, set)):
        return str(len(clients))
    return str(clients) if isinstance(clients, int) else "-"


def _mib(value) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def register(app: typer.Typer) -> None:
    app.command("status")(status)
