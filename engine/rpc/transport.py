"""Message transport between ownrun processes (with auth.py and oneshot.py beside it, the
only code that imports zmq).

Owns: one zmq context per process, one bound inbox (PULL) per process and one PUSH
socket per peer it talks to, plus a wake-up eventfd so another thread can interrupt the
poller. Every process-to-process message is a list of frames: a msgpack header (a list
whose first element is the message type from `protocol`) followed by raw payload frames
sent without re-encoding (frames of 512 KiB and more are sent zero-copy by pyzmq).

Authentication (DESIGN.md §6): every cluster authenticates its peers. An embedded cluster
(all peers on this machine) binds unix sockets (`ipc://`) inside its private session
directory (0700, cluster/paths.py): only its user can connect. Any other cluster has a
cluster key (`cluster_key.CurveKeys`); every transport of its processes then speaks zmq CURVE: the inbox is a CURVE server and its ZAP check (auth.py)
admits only peers whose client key is the cluster's own, and every PUSH socket is a CURVE
client with the cluster keypair. A peer without the key never completes a connection; the
inbox logs the refusal. `Transport()` without arguments takes this process's network
identity: the one set for the current thread by `network_identity(...)` (a driver joining
a cluster), else the one a node daemon exports to its zygote and workers through the
environment (`export_identity`), else loopback without a key.

Thread-safety: `send` may be called from any thread; sends are serialized by an internal
lock so messages from this process to one peer keep their order. `poll`/`recv_all` must be
called by one thread only (the process's I/O thread), which also answers the ZAP checks.
`watch_peer` (the head watching its daemons' connections drop) is for that thread too.

Failures: a send to a peer whose queue is full (a dead or stuck peer) is dropped and
reported by returning False, never blocking the caller. A malformed address raises
`ValueError` naming it; a bind that fails raises `OSError` naming the endpoint.
"""

from __future__ import annotations

import contextlib
import os
import threading

import msgpack
import zmq
from zmq.utils.monitor import recv_monitor_message

from . import addresses
from .auth import AuthGate
from .cluster_key import CurveKeys
from .unix_transport import UnixTransport
from .wakeup import WakeFd

_packb = msgpack.Packer(use_bin_type=True).pack
_unpackb = msgpack.unpackb

# How many messages may queue to one peer before sends to it are dropped.
PEER_QUEUE_LIMIT = 200_000
# Frames from this size on are sent zero-copy. Below it a copy is cheaper: a zero-copy frame
# costs a wake-up of pyzmq's garbage-collector thread (and the GIL) when zmq frees it
# (measured: 75 KiB frames 49-61 us CPU copied vs 72-80 us zero-copy; equal at 256 KiB).
ZERO_COPY_MIN = 512 << 10
# Plain ints: pyzmq's IntFlag members cost an Enum call per use on the hot path (profiled).
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)


def pack(header: list) -> bytes:
    return _packb(header)


def unpack(frame: bytes) -> list:
    return _unpackb(frame, raw=False, use_list=True, strict_map_key=False)


def validate_address(address: str) -> str:
    """Checks a peer address of the form tcp://HOST:PORT or ipc://PATH."""
    if not isinstance(address, str) or not address.startswith(("tcp://", "ipc://")):
        raise ValueError(f"bad address {address!r}: expected tcp://HOST:PORT")
    if address.startswith("tcp://"):
        host, _, port = address[6:].rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"bad address {address!r}: expected tcp://HOST:PORT")
    return address


# The environment a node daemon exports so its zygote and workers share its identity.
ENV_BIND = "OWNRUN_NODE_BIND"
ENV_KEY = "OWNRUN_NODE_KEY"
ENV_NODE_IP = "OWNRUN_NODE_IP"
ENV_ZMQ_IPC = "OWNRUN_ZMQ_IPC"  # set (to 1): unix-socket peers speak zmq too (A/B measurements)
_thread_identity = threading.local()


@contextlib.contextmanager
def network_identity(bind_host: str, curve: CurveKeys | None):
    """Transports created by this thread inside the block bind on `bind_host` and use `curve`."""
    previous = getattr(_thread_identity, "value", None)
    _thread_identity.value = (bind_host, curve)
    try:
        yield
    finally:
        _thread_identity.value = previous


def export_identity(env: dict, bind_host: str, curve: CurveKeys | None, node_ip: str | None) -> None:
    """Writes the identity into `env` (os.environ of a daemon) for the processes it starts."""
    env[ENV_BIND] = bind_host
    for name, value in ((ENV_KEY, curve.path if curve else None), (ENV_NODE_IP, node_ip)):
        if value:
            env[name] = value
        else:
            env.pop(name, None)


def _process_identity() -> tuple[str, CurveKeys | None]:
    scoped = getattr(_thread_identity, "value", None)
    if scoped is not None:
        return scoped
    key_path = os.environ.get(ENV_KEY)
    return os.environ.get(ENV_BIND, "127.0.0.1"), CurveKeys.load(key_path) if key_path else None


def Transport(bind_host: str | None = None, port: int | str = 0,  # noqa: N802 - the transport's constructor
              curve: CurveKeys | None = None) -> AnyTransport:
    """A process's transport: bound at `bind_host` (default: this process's network identity).
    `ipc://DIR` without a cluster key (an embedded cluster's processes) gets plain unix sockets
    (unix_transport.py: no zmq I/O thread, a third of the CPU per message); anything else zmq."""
    if bind_host is None and curve is None:
        bind_host, curve = _process_identity()
    if bind_host and addresses.is_ipc(bind_host) and curve is None and not os.environ.get(ENV_ZMQ_IPC):
        return UnixTransport(bind_host, port)
    return ZmqTransport(bind_host, port, curve)


class ZmqTransport:
    """A process's inbox and its outgoing connections, through zmq."""

    def __init__(self, bind_host: str | None = None, port: int | str = 0, curve: CurveKeys | None = None):
        bind_host = bind_host or "127.0.0.1"
        self.curve = curve
        self._ctx = zmq.Context()
        self._gate = AuthGate(self._ctx, curve) if curve is not None else None
        self._inbox = self._ctx.socket(zmq.PULL)
        self._inbox.setsockopt(zmq.RCVHWM, 0)
        self._inbox.setsockopt(zmq.LINGER, 0)
        ipc = addresses.is_ipc(bind_host)  # a directory: unix sockets, for local peers only
        endpoint = addresses.ipc_endpoint(bind_host, port) if ipc else f"tcp://{bind_host}:{port or '*'}"
        try:
            if self._gate is not None:
                self._gate.protect(self._inbox)
            self._inbox.bind(endpoint)
        except zmq.ZMQError as exc:
            self._ctx.destroy(0)
            raise OSError(exc.errno, f"cannot bind {endpoint}: {os.strerror(exc.errno)}") from None
        bound = self._inbox.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.address: str = bound if ipc else addresses.advertised(bound, os.environ.get(ENV_NODE_IP))
        self._peers: dict[str, zmq.Socket] = {}
        self._send_lock = threading.Lock()
        self._wake = WakeFd()
        self._poller = zmq.Poller()
        self._poller.register(self._inbox, zmq.POLLIN)
        self._poller.register(self._wake.fd, zmq.POLLIN)
        if self._gate is not None:
            self._gate.started(bound)
            for sock in self._gate.sockets():
                self._poller.register(sock, zmq.POLLIN)
        self._extra_fds: dict[int, object] = {}
        self._monitored: list[tuple[zmq.Socket, zmq.Socket]] = []  # (peer socket, its monitor)
        self._watched: dict[zmq.Socket, object] = {}  # monitor in the poll set -> token (watch_peer)
        self.closed = False

    # ---- sending (any thread) -------------------------------------------------------
    def send(self, address: str, frames: list) -> bool:
        """Queues frames to a peer. Returns False when the peer's queue is full (dropped)."""
        with self._send_lock:
            if self.closed:
                return False
            sock = self._peers.get(address)
            if sock is None:
                sock = self._connect(address)
            try:
                last = len(frames) - 1
                for i, frame in enumerate(frames):
                    sock.send(frame, _NOBLOCK | _SNDMORE if i < last else _NOBLOCK, copy=len(frame) < ZERO_COPY_MIN)
                return True
            except zmq.Again:
                return False

    def send_many(self, address: str, messages: list[list]) -> bool:
        """`send` of each message in turn (zmq wakes the peer's I/O thread as it likes)."""
        return all([self.send(address, frames) for frames in messages])

    def _connect(self, address: str) -> zmq.Socket:
        sock = self._peer_socket(address)
        sock.connect(address)
        self._peers[address] = sock
        return sock

    def _peer_socket(self, address: str) -> zmq.Socket:
        validate_address(address)
        sock = self._ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, PEER_QUEUE_LIMIT)
        if self.curve is not None:
            sock.curve_serverkey = self.curve.public
            sock.curve_publickey = self.curve.public
            sock.curve_secretkey = self.curve.secret
        return sock

    def monitor_peer(self, address: str) -> ZmqConnectionEvents:
        """Connects to `address` now and returns that connection's events (zmq socket monitor;
        for one-shot clients that diagnose a silent peer)."""
        with self._send_lock:
            self._disconnect_locked(address)
            sock = self._peer_socket(address)
            monitor = sock.get_monitor_socket(zmq.EVENT_ALL)  # before connect: no event is missed
            sock.connect(address)
            self._peers[address] = sock
            self._monitored.append((sock, monitor))
            return ZmqConnectionEvents(monitor)

    def watch_peer(self, address: str, token: object) -> None:
        """Makes `poll` report `token` once the connection to `address` drops after being up:
        the peer's process exited or closed its inbox (a death the OS reports; a paused peer
        keeps its connection). Connects now if not yet connected. I/O thread only."""
        with self._send_lock:
            if self.closed:
                return
            sock = self._peers.get(address)
            if sock is None:
                sock = self._connect(address)
            if any(watched is sock for watched, _ in self._monitored):
                return
            monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            self._monitored.append((sock, monitor))
            self._watched[monitor] = token
            self._poller.register(monitor, zmq.POLLIN)

    def disconnect(self, address: str) -> None:
        """Drops the connection to a peer known to be dead (its queued messages are lost)."""
        with self._send_lock:
            self._disconnect_locked(address)

    def _disconnect_locked(self, address: str) -> None:
        sock = self._peers.pop(address, None)
        if sock is not None:
            for watched, monitor in [m for m in self._monitored if m[0] is sock]:
                if self._watched.pop(monitor, None) is not None:
                    self._poller.unregister(monitor)
                watched.disable_monitor()
                monitor.close(0)
                self._monitored.remove((watched, monitor))
            sock.close(0)

    def wake(self) -> None:
        """Interrupts a `poll` running in the I/O thread. A no-op once closed (wakeup.py)."""
        self._wake.wake()

    # ---- receiving (I/O thread only) -------------------------------------------------
    def watch_fd(self, fd: int, token: object) -> None:
        """Adds a raw fd (a pidfd, a pipe) to the poll set; `poll` reports `token` when readable."""
        self._poller.register(fd, zmq.POLLIN)
        self._extra_fds[fd] = token

    def unwatch_fd(self, fd: int) -> None:
        if self._extra_fds.pop(fd, None) is not None:
            self._poller.unregister(fd)

    def poll(self, timeout_ms: int | None) -> tuple[list[list], list[object]]:
        """Waits for input. Returns (messages, tokens of ready extra fds)."""
        events = self._poller.poll(timeout_ms)
        messages: list[list] = []
        tokens: list[object] = []
        for what, _ in events:
            if what is self._inbox:
                self._drain_inbox(messages)
            elif what == self._wake.fd:
                self._wake.drain()
            elif what in self._watched:
                if self._peer_dropped(what):
                    tokens.append(self._watched[what])
            else:
                token = self._extra_fds.get(what)
                if token is not None:
                    tokens.append(token)
                elif self._gate is not None:
                    self._gate.handle(what)
        return messages, tokens

    @staticmethod
    def _peer_dropped(monitor: zmq.Socket) -> bool:
        dropped = False
        while True:
            try:
                event = monitor.recv_multipart(_NOBLOCK)
            except zmq.Again:
                return dropped
            if len(event) >= 1 and len(event[0]) >= 2:
                dropped |= int.from_bytes(event[0][:2], "little") == zmq.EVENT_DISCONNECTED

    def _drain_inbox(self, messages: list[list], limit: int = 512) -> None:
        recv = self._inbox.recv_multipart
        for _ in range(limit):
            try:
                messages.append(recv(_NOBLOCK))
            except zmq.Again:
                return

    def close(self) -> None:
        with self._send_lock:
            if self.closed:
                return
            self.closed = True
            for address in list(self._peers):
                self._disconnect_locked(address)
            if self._gate is not None:
                self._gate.close(self._inbox)
            self._inbox.close(0)
            self._wake.close()
            self._ctx.term()


class ZmqConnectionEvents:
    """The events of one zmq connection (`monitor_peer`): (zmq event, value) pairs."""

    def __init__(self, monitor: zmq.Socket):
        self._monitor = monitor

    def events(self) -> list[tuple[int, int]]:
        events = []
        while not self._monitor.closed and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            events.append((event["event"], event["value"]))
        return events


AnyTransport = ZmqTransport | UnixTransport  # what `Transport(...)` returns (type hints)
