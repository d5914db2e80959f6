"""`ownrun start`: a head and a node on this machine (`--head`), or one more node (`--address`)."""
import json
import os
import re
from typing import Annotated

import typer
from ownrun.cli.console import console

KEY_HELP = ("The cluster key file (default: $OWNRUN_CLUSTER_KEY, else the key of the cluster started "
            "from this machine by your user).")
_ADDRESS = re.compile(r"^(tcp://)?(\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):(\d{1,5})$")


def check_address(value: str | None) -> str | None:
    """`--address`: HOST:PORT (or "auto"), checked before the engine is imported: a malformed
    one is a usage error (exit 2), not a cluster error."""
    if value is None or value == "auto":
        return value
    match = _ADDRESS.match(value.strip())
    if not match or not 0 < int(match.group(3)) < 65536:
        raise typer.BadParameter(f"expected HOST:PORT (e.g. 127.0.0.1:6380), got {value!r}")
    return value.strip()


def check_query_address(value: str | None) -> str | None:
    """`--address` of a command that only asks (status, list, memory, ...): HOST:PORT, or the
    ipc://PATH of an embedded cluster of this user (what `engine.init()` returns as "address")."""
    if value is not None and value.strip().startswith("ipc://") and len(value.strip()) > len("ipc://"):
        return value.strip()
    return check_address(value)


QUERY_ADDRESS_HELP = ("HOST:PORT of the head, or the ipc://PATH address engine.init() returned for an "
                      "embedded cluster (default: the cluster started from this machine).")


def check_key(value: str | None) -> str | None:
    """`--cluster-key`: a missing file is a file problem (exit 5), named."""
    if value and not os.path.isfile(os.path.expanduser(value)):
        raise FileNotFoundError(2, "no such cluster key file", value)
    return value


def start(
    head: Annotated[bool, typer.Option("--head", help="Start a head and one node daemon here.")] = False,
    address: Annotated[str | None, typer.Option(
        "--address", callback=check_address,
        help="HOST:PORT of a running head: start one more node daemon that joins it.")] = None,
    port: Annotated[int, typer.Option("--port", help="The head's port (with --head).")] = 6380,
    num_cpus: Annotated[float | None, typer.Option("--num-cpus", help="CPUs of the node (default: the CPUs this process may use: the machine's, fewer under a CPU quota or affinity mask).")] = None,
    resources: Annotated[str, typer.Option(
        "--resources", help='Custom resources of the node as JSON, e.g. \'{"GPU": 1}\'.')] = "{}",
    object_store_memory: Annotated[int | None, typer.Option(
        "--object-store-memory", help="Bytes of the node's shared-memory store (default: 30% of RAM, less "
                                      "what the stores of your ownrun nodes already running here claim; at "
                                      "least 512 MiB).")] = None,
    bind: Annotated[str | None, typer.Option(
        "--bind", help="Address to listen on (every cluster has a key its members must hold; beyond "
                       "loopback, e.g. 0.0.0.0, copy it to the other machines). Default: 127.0.0.1 for --head; with "
                       "--address, this machine's address toward the head.")] = None,
    cluster_key: Annotated[str | None, typer.Option("--cluster-key", envvar="OWNRUN_CLUSTER_KEY",
                                                    callback=check_key, help=KEY_HELP)] = None,
    node_timeout: Annotated[float, typer.Option(
        "--node-timeout", help="Seconds without a heartbeat before the head declares a node dead (one "
                               "whose process exits is declared dead at once).")] = 30.0,  # liveness.DEFAULT_DEAD_AFTER
) -> None:
    """Start a cluster that outlives this command (stop it with `ownrun stop`)."""
    from ownrun.engine.cluster import started  # imports the engine: keep `ownrun --help` fast

    if head == (address is not None):
        raise typer.BadParameter("give either --head or --address HOST:PORT", param_hint="--head/--address")
    extra = _parse_resources(resources)
    if head:
        state = started.start_head(port, num_cpus, extra, object_store_memory, bind or "127.0.0.1",
                                         node_timeout)
        _print_started_head(state)
    else:
        node_id, state = started.start_node(address, num_cpus, extra, object_store_memory, bind,
                                                  cluster_key)
        node = state["nodes"][node_id]
        console.print(f"started node {node_id} at {_plain(node['address'])}, joined to the head at "
                      f"{_plain(state['head_address'])} (logs: {node['session_dir']}/logs)", soft_wrap=True)


def _parse_resources(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--resources") from None
    if not isinstance(value, dict) or not all(isinstance(v, (int, float)) and v >= 0 for v in value.values()):
        raise typer.BadParameter('expected an object of non-negative numbers, e.g. {"GPU": 1}',
                                 param_hint="--resources")
    return {str(k): float(v) for k, v in value.items()}


def _is_loopback(address: str) -> bool:
    from ownrun.engine.rpc import addresses

    return addresses.is_loopback(address.rpartition(":")[0].strip("[]"))


def _plain(address: str) -> str:
    return address.removeprefix("tcp://")


def _print_started_head(state: dict) -> None:
    address = _plain(state["head_address"])
    node_id, node = next(iter(state["nodes"].items()))
    key = state["cluster_key"]
    local = _is_loopback(address)
    console.print(f"started an ownrun cluster: head at [bold]{address}[/], node {node_id}", soft_wrap=True)
    console.print(f"  session dir:  {state['session_dir']}", soft_wrap=True)
    if key:
        where = "found on this machine by your user" if local else \
            "every member needs it: copy it to the other machines"
        console.print(f"  cluster key:  {key}  ({where})", soft_wrap=True)
    key_arg = f', cluster_key="{key}"' if key and not local else ""
    key_opt = f" --cluster-key {key}" if key and not local else ""
    console.print(f'connect a driver:  engine.init(address="{address}"{key_arg})', soft_wrap=True)
    console.print(f"add a node:        ownrun start --address {address}{key_opt}", soft_wrap=True)
    console.print("see / stop it:     ownrun status, ownrun stop", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("start")(start)
