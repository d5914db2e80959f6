"""`ownrun kill-node`: SIGKILLs one node of a running cluster, as a machine loss."""
from typing import Annotated

import typer
from ownrun.cli.console import console
from ownrun.cli.start import KEY_HELP, check_address, check_key


def kill_node(
    node_id: Annotated[str | None, typer.Argument(help="The node to kill (see `ownrun status`).")] = None,
    pick_random: Annotated[bool, typer.Option("--random", help="Kill a random live node started here.")] = False,
    address: Annotated[str | None, typer.Option(
        "--address", callback=check_address,
        help="HOST:PORT of the head (default: the cluster started from this machine).")] = None,
    cluster_key: Annotated[str | None, typer.Option("--cluster-key", envvar="OWNRUN_CLUSTER_KEY",
                                                    callback=check_key, help=KEY_HELP)] = None,
) -> None:
    """Kill a node (its daemon, workers and store) started from this machine."""
    from ownrun.engine.cluster import started

    if (node_id is None) == (not pick_random):
        raise typer.BadParameter("give a NODE_ID or --random", param_hint="NODE_ID/--random")
    killed = started.kill_node(node_id, pick_random, address, cluster_key)
    console.print(f"killed node {killed}; the head declares it dead after its heartbeat timeout", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("kill-node")(kill_node)
