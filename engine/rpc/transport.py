"""Message transport between ownrun processes: the only module that imports zmq.

Owns: one zmq context per process, one bound inbox (PULL) per process and one PUSH
socket per peer it talks to, plus a wake-up eventfd so another thread can interrupt the
poller. Every process-to-process message is a list of frames: a msgpack header (a list
whose first element is the message type from `protocol`) followed by raw payload frames
sent without re-encoding (large frames are sent zero-copy by pyzmq).

Thread-safety: `send` may be called from any thread; sends are serialized by an internal
lock so messages from this process to one peer keep their order. `poll`/`recv_all` must be
called by one thread only (the process's I/O thread).

Failures: a send to a peer whose queue is full (a dead or stuck peer) is dropped and
reported by returning False, never blocking the caller. A malformed address raises
`ValueError` naming it.
"""

from __future__ import annotations

import os
import threading

import msgpack
import zmq

_packb = msgpack.Packer(use_bin_type=True).pack
_unpackb = msgpack.unpackb

# How many messages may queue to one peer before sends to it are dropped.
PEER_QUEUE_LIMIT = 200_000
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


class Transport:
    """A process's inbox and its outgoing connections."""

    def __init__(self, bind_host: str = "127.0.0.1", port: int = 0):
        self._ctx = zmq.Context()
        self._inbox = self._ctx.socket(zmq.PULL)
        self._inbox.setsockopt(zmq.RCVHWM, 0)
        self._inbox.setsockopt(zmq.LINGER, 0)
        if port:
            self._inbox.bind(f"tcp://{bind_host}:{port}")
        else:
            self._inbox.bind(f"tcp://{bind_host}:*")
        self.address: str = self._inbox.getsockopt(zmq.LAST_ENDPOINT).decode()
        self._peers: dict[str, zmq.Socket] = {}
        self._send_lock = threading.Lock()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._poller = zmq.Poller()
        self._poller.register(self._inbox, zmq.POLLIN)
        self._poller.register(self._wake_fd, zmq.POLLIN)
        self._extra_fds: dict[int, object] = {}
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
                    sock.send(frame, _NOBLOCK | _SNDMORE if i < last else _NOBLOCK, copy=len(frame) < 65536)
                return True
            except zmq.Again:
                return False

    def _connect(self, address: str) -> zmq.Socket:
        validate_address(address)
        sock = self._ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, PEER_QUEUE_LIMIT)
        sock.connect(address)
        self._peers[address] = sock
        return sock

    def disconnect(self, address: str) -> None:
        """Drops the connection to a peer known to be dead (its queued messages are lost)."""
        with self._send_lock:
            sock = self._peers.pop(address, None)
            if sock is not None:
                sock.close(0)

    def wake(self) -> None:
        """Interrupts a `poll` running in the I/O thread."""
        try:
            os.eventfd_write(self._wake_fd, 1)
        except (BlockingIOError, OSError):
            pass

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
            elif what == self._wake_fd:
                try:
                    os.eventfd_read(self._wake_fd)
                except BlockingIOError:
                    pass
            else:
                token = self._extra_fds.get(what)
                if token is not None:
                    tokens.append(token)
        return messages, tokens

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
            for sock in self._peers.values():
                sock.close(0)
            self._peers.clear()
            self._inbox.close(0)
            os.close(self._wake_fd)
            self._ctx.term()
