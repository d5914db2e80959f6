"""Joining a running cluster: `engine.init(address=...)` and the `ownrun` commands that talk to one.

Owns finding a cluster (`resolve`: a user's address — "HOST:PORT", "tcp://HOST:PORT" or
"auto", the one started from this machine, or the `ipc://` address an embedded cluster's
`engine.init()` returned — and key option -> the head's address and the
key to use), picking the node daemon on this machine a driver joins (`plan_join`), and
connecting the driver's core worker there (`connect_driver`).

Thread-safe (no shared state; `connect_driver` scopes the network identity to the calling
thread). Failures: `ClusterError` (an EngineError, one line naming the address and what to
do) when nothing answers, the key is missing, wrong or unreadable, the address is
malformed, or no node runs on this machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .. import ids
from ..errors import ClusterError
from ..rpc import addresses, oneshot
from ..rpc import protocol as P
from ..rpc.cluster_key import KEY_ENV, CurveKeys
from . import state


@dataclass(frozen=True)
class Target:
    """A cluster to talk to: its head's tcp:// address and the key its members use."""

    head_address: str
    curve: CurveKeys | None

    @property
    def plain(self) -> str:
        return addresses.plain(self.head_address)


def resolve(address: str | None, cluster_key: str | None = None) -> Target:
    """The cluster at `address` ("HOST:PORT"; None or "auto": the one started from this
    machine), with the key from `cluster_key`, else $OWNRUN_CLUSTER_KEY, else the state
    file's key when the state file describes that same head."""
    current = state.read()
    if address in (None, "", "auto"):
        if not current.get("head_address"):
            raise ClusterError("no ownrun cluster started from this machine is running "
                               "(start one with `ownrun start --head`, or pass its address)")
        head = current["head_address"]
    elif addresses.is_ipc(address):
        # An embedded cluster of this user on this machine (`engine.init()` in another process):
        # its unix sockets sit in a 0700 directory, which is its authentication; no key.
        path = address[len(addresses.IPC):]
        if not os.path.exists(path):
            raise ClusterError(f"no cluster listens at {address} (its driver may have shut it down)")
        return Target(address, None)
    else:
        try:
            head = addresses.tcp(*addresses.parse(address))
        except ValueError as exc:
            raise ClusterError(str(exc)) from None
    key_path = cluster_key or os.environ.get(KEY_ENV) or None
    if key_path is None and current.get("head_address") == head:
        key_path = current.get("cluster_key")
    try:
        curve = CurveKeys.load(os.path.expanduser(key_path)) if key_path else None
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot read the cluster key {key_path}: {exc}") from None
    return Target(head, curve)


def call(client: oneshot.OneShotClient, kind: int, timeout: float = 5.0):
    """One request to the head; its failures as `ClusterError`s."""
    try:
        return client.call(kind, timeout=timeout)
    except oneshot.PeerError as exc:
        raise ClusterError(str(exc)) from None  # names the address and what to do
    except oneshot.RequestFailed as exc:
        raise ClusterError(f"the head at {addresses.plain(client.address)} failed: {exc}") from None


@dataclass(frozen=True)
class JoinPlan:
    """Where a driver joining a cluster connects: its local daemon, bind host and key."""

    head_address: str
    daemon_address: str
    bind_host: str
    curve: CurveKeys | None


def plan_join(address: str, cluster_key: str | None, timeout: float = 5.0) -> JoinPlan:
    """Asks the head at `address` for its nodes and picks a live one on this machine.

    Raises `ClusterError` (one line naming the address) within about `timeout` seconds when
    nothing answers there, the key is missing or wrong, or no node runs on this machine."""
    target = resolve(address, cluster_key)
    with oneshot.OneShotClient(target.head_address, target.curve) as client:
        view = call(client, P.NODE_LIST, timeout)
    if addresses.is_ipc(target.head_address):
        for _, node in sorted(view.items()):
            if node["alive"] and addresses.is_ipc(node["address"]):
                bind_dir = node["address"][:node["address"].rfind("/")]
                return JoinPlan(target.head_address, node["address"], bind_dir, None)
        raise ClusterError(f"no live node of the cluster at {target.head_address}")
    for _, node in sorted(view.items()):
        host, _ = addresses.parse(node["address"])
        if node["alive"] and addresses.is_local_ip(host):
            head_host, _ = addresses.parse(target.head_address)
            bind = addresses.source_ip_toward(head_host) or host
            return JoinPlan(target.head_address, node["address"], bind, target.curve)
    raise ClusterError(f"no node of the cluster at {target.plain} runs on this machine; "
                       f"start one with `ownrun start --address {target.plain}`")


def connect_driver(address: str, cluster_key: str | None, config: dict):
    """The driver's CoreWorker on this machine's node of the cluster at `address`,
    registered with its daemon. Its transport binds where the cluster reaches it, with the key."""
    plan = plan_join(address, cluster_key)
    return connect(plan.daemon_address, plan.bind_host, plan.curve, config)


def connect(daemon_address: str, bind_host: str, curve: CurveKeys | None, config: dict):
    """This process's CoreWorker as a driver: its transport bound on `bind_host` with the
    cluster key, registered with the daemon at `daemon_address` (stopped if that fails)."""
    from ..rpc.transport import network_identity
    from ..worker.core_worker import CoreWorker

    with network_identity(bind_host, curve):
        core = CoreWorker("driver", daemon_address, ids.new_worker_id(), config)
    try:
        core.register_driver()
    except BaseException:
        core.stop()
        raise
    return core
