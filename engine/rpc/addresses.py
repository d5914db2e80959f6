"""Host and address helpers: what users type (HOST:PORT) and which IP this machine has.

Owns parsing of a cluster address (`HOST:PORT` or `tcp://HOST:PORT`; `ipc://PATH` for the
unix sockets of an embedded cluster, whose peers are all on this machine), loopback tests,
"is this IP one of this machine's (network namespace's) addresses" (by binding a UDP
socket to it: no traffic, no extra dependency), the source IP this machine uses to reach a
host (a connected UDP socket: the kernel picks the route, no packet is sent) and the address
a wildcard-bound socket advertises to peers.

Pure functions over the socket API; thread-safe. Failures: `ValueError` naming a malformed
address; the IP helpers return None instead of raising when there is no route.
"""

from __future__ import annotations

import ipaddress
import os
import socket

_WILDCARDS = {"0.0.0.0", "*", "::", "[::]"}
# TEST-NET-1 (RFC 5737): only used to ask the kernel for the default route's source IP.
_DEFAULT_ROUTE_PROBE = "192.0.2.1"


def parse(address: str) -> tuple[str, int]:
    """`HOST:PORT` or `tcp://HOST:PORT` -> (host, port)."""
    text = address.strip()
    if text.startswith("tcp://"):
        text = text[6:]
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad cluster address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:6380")
    return host.strip("[]"), int(port)


IPC = "ipc://"
IPC_PATH_MAX = 100  # a unix socket path is at most 107 bytes; keep room for the file name


def is_ipc(address: str) -> bool:
    """An `ipc://PATH` address: a unix socket file, for peers on this machine only."""
    return address.startswith(IPC)


def ipc_endpoint(bind_dir: str, port: int | str) -> str:
    """Where a transport bound in `ipc://DIR` listens: `DIR/<port>` for a fixed address (a
    restarted head binds the one its peers know; a one-shot client's slot name), else a file
    name of its own."""
    name = str(port) if port else f"{os.getpid()}-{os.urandom(3).hex()}"
    return f"{bind_dir}/{name}"


def host(address: str) -> str:
    """The host of `tcp://HOST:PORT` or `HOST:PORT`; "localhost" for an ipc:// address."""
    return "localhost" if is_ipc(address) else parse(address)[0]


def tcp(host: str, port: int) -> str:
    return f"tcp://{host}:{port}"


def plain(address: str) -> str:
    """tcp://HOST:PORT -> HOST:PORT (what users type)."""
    return address[6:] if address.startswith("tcp://") else address


def is_wildcard(host: str) -> bool:
    return host in _WILDCARDS


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve(host: str) -> str | None:
    try:
        return socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0]
    except (OSError, IndexError):
        return None


def is_local_ip(host: str) -> bool:
    """True if `host` is an address of this machine (of this network namespace)."""
    if is_loopback(host):
        return True
    ip = resolve(host)
    if ip is None:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((ip, 0))
            return True
        except OSError:
            return False


def source_ip_toward(host: str) -> str | None:
    """The local IP the kernel uses to reach `host` (127.0.0.1 for loopback), None if unroutable."""
    if is_loopback(host):
        return "127.0.0.1"
    ip = resolve(host)
    if ip is None:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((ip, 9))
            return probe.getsockname()[0]
        except OSError:
            return None


def advertised(bound_endpoint: str, node_ip: str | None) -> str:
    """The address peers should use for a socket bound at `bound_endpoint` (tcp://HOST:PORT):
    a wildcard host is replaced by `node_ip`, else by this machine's default-route IP."""
    host, port = parse(bound_endpoint)
    if not is_wildcard(host):
        return bound_endpoint
    return tcp(node_ip or source_ip_toward(_DEFAULT_ROUTE_PROBE) or "127.0.0.1", port)
