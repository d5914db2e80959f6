"""Message transport over plain unix sockets, for the processes of an embedded cluster.

Owns what `transport.ZmqTransport` owns, for peers that bind `ipc://DIR` (all on this machine,
in the cluster's private 0700 session directory, which is its authentication: only its user can
connect): one listening unix socket per process (its inbox), one connected stream socket per peer
it sends to, the wake-up eventfd and two epoll sets (the I/O thread's, and a reading
thread's: see `wait_events`). No zmq context and no zmq I/O thread: a message is written by the
sending thread itself (one `sendmsg` of its frames) and read straight from the socket by the
receiving process's reading thread if one waits (a driver blocked in `get`, a worker's idle
executor), else by its I/O thread, so a message costs one thread wake-up on each side instead of
three (sender -> zmq I/O thread -> socket -> zmq I/O thread -> poller).
Measured: a ping-pong between two processes, 55-64 us of CPU per round trip against 160 us
through zmq PUSH/PULL over the same unix sockets.

Wire format of one message: `<u32 MAGIC | n><u32 len_1>...<u32 len_n>` then the n frames' bytes
(little-endian). A message the reader cannot frame (no magic, no frames, a frame over `MAX_FRAME`)
is not ours:
the connection is closed and counted (`malformed_connections`), the process goes on.

Semantics kept from zmq PUSH/PULL: `send` never blocks (what the socket does not take now is
queued in the process and written by the I/O thread when the peer can take more; per-peer order
is kept); a send to a peer that is not listening (yet: a restarting head, a starting client) is
queued and retried every `RECONNECT_S` by the I/O thread, like zmq's reconnect (every
`RECONNECT_SLOW_S` once it has refused for `SLOW_AFTER_S`; after `GIVE_UP_S` its queue is dropped
and counted in `dropped`, so a peer that is gone for good, and that no death notice named, does
not wake the process forever); a peer's queue beyond `PEER_QUEUE_LIMIT` messages drops the send
(False). `disconnect` drops a dead peer's
queue. Threading as in `transport.py`: `send`/`wake`/`disconnect` from any thread (one lock),
`poll`, `watch_fd`, `watch_peer` from the I/O thread only; `wait_events(reader=True)` from one
reading thread, whose `take` the caller serializes with the I/O thread's.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import select
import socket
import struct
import threading
import time

import zmq

from . import addresses
from . import protocol as P
from .wakeup import WakeFd

log = logging.getLogger("ownrun.transport")

PEER_QUEUE_LIMIT = 200_000  # messages queued to one peer before sends to it are dropped
RECONNECT_S = 0.1  # retry interval of a peer that refused a connection (zmq's default)
SLOW_AFTER_S = 5.0  # refused this long: retried every RECONNECT_SLOW_S
RECONNECT_SLOW_S = 1.0
GIVE_UP_S = 60.0  # refused this long: what is queued for it is dropped
MAGIC = 0x6F720000  # the high half of a message's first word ("or"); the low half counts its frames
MAX_FRAMES = P.MAX_MESSAGE_FRAMES  # frames in one message, at most (a task's push: 1 + one per argument)
MAX_FRAME = 1 << 31  # bytes in one frame, at most
SOCKET_BUFFER = 1 << 20  # kernel buffer per connection (bigger writes without the I/O thread)
READ_CHUNK = 1 << 18  # bytes per recv
READS_PER_EVENT = 16  # recv calls per ready connection and poll (other peers get their turn)
_IOV_MAX = 512  # buffers per sendmsg call (the kernel refuses more than IOV_MAX, 1024)

_U32 = struct.Struct("<I")
_IN, _OUT = select.EPOLLIN, select.EPOLLOUT
_GONE = select.EPOLLHUP | select.EPOLLERR | select.EPOLLRDHUP
_NOSIGNAL = socket.MSG_NOSIGNAL
_REFUSED = (errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN)  # nothing listens (yet), or its backlog is full
_headers: dict[int, struct.Struct] = {}


def _header(count: int) -> struct.Struct:
    header = _headers.get(count)
    if header is None:
        header = _headers[count] = struct.Struct(f"<{count + 1}I")
    return header


def _nbytes(buf) -> int:
    return len(buf) if type(buf) is bytes else memoryview(buf).nbytes


def frame_message(frames: list) -> list:
    """The buffers of one message on the wire: its header, then its frames as they are."""
    return _framed(frames)[0]


def _framed(frames: list) -> tuple[list, int]:
    """`frame_message(frames)` and its size in bytes (each frame's length taken once)."""
    lengths = list(map(_nbytes, frames))
    count = len(frames)
    return [_header(count).pack(MAGIC | count, *lengths), *frames], 4 * (count + 1) + sum(lengths)


class _Peer:
    """The connection this process writes to one peer, and what waits to be written."""

    __slots__ = ("address", "path", "sock", "fd", "queue", "written", "mask", "watch_token", "retry_at",
                 "refused_since", "events")

    def __init__(self, address: str):
        self.address = address
        self.path = address[len(addresses.IPC):]
        self.sock: socket.socket | None = None
        self.fd = -1
        self.queue: collections.deque = collections.deque()  # messages (lists of buffers) not yet sent
        self.written = 0  # bytes of queue[0] already written
        self.mask = 0  # what the epoll set watches on `fd`
        self.watch_token = None  # watch_peer: reported when the connection drops
        self.retry_at = 0.0  # when a refused connection is tried again
        self.refused_since = 0.0  # when its connections began to be refused (0: they are not)
        self.events: list | None = None  # monitor_peer: connection events not yet read


class _Inbound:
    """A connection a peer opened to our inbox: bytes read but not yet framed."""

    __slots__ = ("sock", "buf")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()


class UnixTransport:
    """A process's inbox and outgoing connections on unix sockets (see the module docstring)."""

    curve = None  # the directory's permissions authenticate peers; no cluster key

    def __init__(self, bind_dir: str, port: int | str = 0):
        path = addresses.ipc_endpoint(bind_dir[len(addresses.IPC):], port)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            if port:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)  # a fixed name left by an earlier process (a restarted head)
            listener.bind(path)
            listener.listen(4096)
        except OSError as exc:
            listener.close()
            raise OSError(exc.errno, f"cannot bind ipc://{path}: {os.strerror(exc.errno)}") from None
        self._listener = listener
        self._path = path
        self.address: str = addresses.IPC + path
        self._epoll = select.epoll()
        self._epoll.register(listener.fileno(), _IN)
        self._wake = WakeFd()
        self._epoll.register(self._wake.fd, _IN)
        # The inbound connections have a poll set of their own, nested in the reading thread's
        # set (`wait_events(reader=True)`, with the nudge) and, while no thread reads, in the I/O
        # thread's (`reader_starts`/`reader_stops`): a message wakes the reader alone while one
        # reads, even when it is not inside a poll (spinning, or preempted), else the I/O thread.
        # (Both threads' sets holding each connection as EPOLLEXCLUSIVE woke the I/O thread for
        # every message that found the reader outside its poll: 1.4 wake-ups per sync call
        # under one busy loop.)
        self._inbound_epoll = select.epoll()
        self._inbound_fd = self._inbound_epoll.fileno()
        self._reader_epoll = select.epoll()
        self._reader_epoll.register(self._inbound_fd, _IN)
        self._nudge = WakeFd()  # wakes the reading thread (`nudge`)
        self._reader_epoll.register(self._nudge.fd, _IN | select.EPOLLET)
        self._epoll.register(self._inbound_fd, _IN)  # no thread reads yet
        self._backlog: set[int] = set()  # inbound fds with more to read than one poll reads
        self._send_lock = threading.Lock()
        self._peers: dict[str, _Peer] = {}
        self._peer_by_fd: dict[int, _Peer] = {}
        self._inbound: dict[int, _Inbound] = {}
        self._extra_fds: dict[int, object] = {}
        self._down: set[_Peer] = set()  # peers with a queue and no connection: retried
        self.malformed_connections = 0
        self.dropped = 0  # messages dropped because their peer refused connections for GIVE_UP_S
        self.closed = False

    # ---- sending (any thread) -------------------------------------------------------
    def send(self, address: str, frames: list) -> bool:
        """Queues frames to a peer. Returns False when the message is dropped (the peer's
        queue is full, the address is not a unix socket, this transport is closed, or the
        message has no frames or more than MAX_FRAMES: counted in `dropped`)."""
        if not self._frames_ok(address, frames):
            return False
        buffers, size = _framed(frames)
        return self._send_framed(address, buffers, size)

    def send_many(self, address: str, messages: list[list]) -> bool:
        """`send` of several messages to one peer in one write: the peer wakes once for all
        of them. False (and none is sent) if any of them could not be."""
        buffers: list = []
        size = 0
        for frames in messages:
            if not self._frames_ok(address, frames):
                return False
            framed, n = _framed(frames)
            buffers += framed
            size += n
        return self._send_framed(address, buffers, size)

    def _frames_ok(self, address: str, frames: list) -> bool:
        if 0 < len(frames) <= MAX_FRAMES:
            return True
        log.error("cannot send a message of %d frames to %s (1 to %d): dropped", len(frames),
                  address, MAX_FRAMES)  # its count would not fit the header's 16 bits
        with self._send_lock:
            self.dropped += 1
        return False

    def _send_framed(self, address: str, buffers: list, size: int) -> bool:
        with self._send_lock:
            if self.closed:
                return False
            peer = self._peers.get(address)
            if peer is None:
                peer = self._new_peer(address)
                if peer is None:
                    return False
            if peer.queue or peer.sock is None:
                return self._enqueue(peer, buffers)
            written = self._write(peer, buffers)
            if written is None:
                # The peer closed. Connected again at once: a process now listening at that
                # address (a one-shot client's inbox, bound again by the next query) takes it
                # now, not after RECONNECT_S; else it is queued for a retry, like zmq.
                self._lost(peer)
                if not self._connect(peer):
                    return self._enqueue(peer, buffers)
                written = self._write(peer, buffers)
                if written is None:
                    self._lost(peer)
                    return self._enqueue(peer, buffers)
            if written < size:
                self._enqueue(peer, buffers)
                peer.written = written
            return True

    @staticmethod
    def _write(peer: _Peer, buffers: list) -> int | None:
        """Bytes of the message the peer's socket took now; None if the peer closed. Lock held."""
        try:  # (at most _IOV_MAX buffers a call: more fail with EMSGSIZE; the rest is queued)
            return peer.sock.sendmsg(buffers if len(buffers) <= _IOV_MAX else buffers[:_IOV_MAX], (), _NOSIGNAL)
        except BlockingIOError:
            return 0
        except OSError:
            return None

    def _new_peer(self, address: str) -> _Peer | None:
        """A peer entry, connected if its socket listens. Lock held."""
        addresses_ok = isinstance(address, str) and addresses.is_ipc(address)
        if not addresses_ok:
            if isinstance(address, str) and address.startswith("tcp://"):
                log.error("cannot send to %s: this process speaks unix sockets only (an embedded "
                          "cluster's); dropped", address)
                return None
            raise ValueError(f"bad address {address!r}: expected ipc://PATH")
        peer = self._peers[address] = _Peer(address)
        self._connect(peer)
        return peer

    def _connect(self, peer: _Peer) -> bool:
        """Connects to the peer's socket; on refusal, schedules a retry. Lock held."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            sock.setblocking(False)
            sock.connect(peer.path)
        except OSError as exc:
            sock.close()
            if exc.errno not in _REFUSED:
                log.debug("connect to %s failed: %s", peer.address, exc)
            now = time.monotonic()
            peer.refused_since = peer.refused_since or now
            peer.retry_at = now + (RECONNECT_S if now - peer.refused_since < SLOW_AFTER_S else RECONNECT_SLOW_S)
            self._mark_down(peer)
            if peer.events is not None:
                peer.events.append((zmq.EVENT_CONNECT_RETRIED, 0))
            return False
        peer.sock, peer.fd, peer.refused_since = sock, sock.fileno(), 0.0
        self._peer_by_fd[peer.fd] = peer
        self._down.discard(peer)
        if peer.events is not None:
            peer.events += [(zmq.EVENT_CONNECTED, 0), (zmq.EVENT_HANDSHAKE_SUCCEEDED, 0)]
        self._update_mask(peer)
        return True

    def _enqueue(self, peer: _Peer, buffers: list) -> bool:
        """Keeps a message for later. Buffers other than `bytes` are copied: the caller may
        change them once `send` returns (an actor's array returned, then mutated by its next
        call). Lock held."""
        if len(peer.queue) >= PEER_QUEUE_LIMIT:
            return False
        peer.queue.append([b if type(b) is bytes else bytes(memoryview(b).cast("B")) for b in buffers])
        if peer.sock is None:
            self._mark_down(peer)
        else:
            self._update_mask(peer)
        return True

    def _mark_down(self, peer: _Peer) -> None:
        """Puts the peer among those the I/O thread retries, and wakes that thread if the peer is
        new there: its poll may be sleeping for up to a second, and the send may come from
        another thread (a task's reply, sent by the worker's executor). Lock held."""
        if peer not in self._down:
            self._down.add(peer)
            self._wake.wake()

    def _update_mask(self, peer: _Peer) -> None:
        """Watches the peer's socket for room (a queue to write) and for its close (watched)."""
        mask = (_OUT if peer.queue else 0) | (_IN | select.EPOLLRDHUP if peer.watch_token is not None else 0)
        if mask == peer.mask or peer.sock is None:
            return
        if peer.mask == 0:
            self._epoll.register(peer.fd, mask)
        elif mask == 0:
            self._epoll.unregister(peer.fd)
        else:
            self._epoll.modify(peer.fd, mask)
        peer.mask = mask

    def _flush(self, peer: _Peer) -> None:
        """Writes what the peer's socket takes of its queue. Lock held."""
        queue = peer.queue
        while queue and peer.sock is not None:
            batch = _rest(queue[0], peer.written)
            messages = 1
            while messages < len(queue) and len(batch) < _IOV_MAX:
                batch.extend(queue[messages])
                messages += 1
            written = self._write(peer, batch)
            if written is None:
                self._lost(peer)
                return
            if not written:
                break  # the socket is full
            written += peer.written
            while queue:
                size = sum(map(_nbytes, queue[0]))
                if written < size:
                    break
                written -= size
                queue.popleft()
            peer.written = written
            if queue:
                break  # the socket is full: the I/O thread goes on when it has room
        self._update_mask(peer)

    def _lost(self, peer: _Peer) -> None:
        """The connection to the peer broke: closed; what is queued waits for a reconnect. Lock held."""
        if peer.sock is not None:
            if peer.mask:
                self._epoll.unregister(peer.fd)
            self._peer_by_fd.pop(peer.fd, None)
            peer.sock.close()
        peer.sock, peer.fd, peer.mask = None, -1, 0
        if peer.written:  # a message cut in the middle cannot be resumed on a new connection
            if peer.queue:
                peer.queue.popleft()
            peer.written = 0
        peer.retry_at = time.monotonic() + RECONNECT_S
        if peer.queue:
            self._mark_down(peer)

    def monitor_peer(self, address: str) -> _ConnectionEvents:
        """Connects to `address` now (dropping an earlier connection) and returns its events
        (for one-shot clients that diagnose a silent peer)."""
        with self._send_lock:
            self._disconnect_locked(address)
            peer = self._peers[address] = _Peer(address)
            peer.events = []
            self._connect(peer)
            return _ConnectionEvents(peer)

    def watch_peer(self, address: str, token: object) -> None:
        """Makes `poll` report `token` once the connection to `address` drops after being up
        (the peer's process exited or closed its inbox). I/O thread only."""
        with self._send_lock:
            if self.closed:
                return
            peer = self._peers.get(address) or self._new_peer(address)
            if peer is None or peer.watch_token is not None:
                return
            peer.watch_token = token
            self._update_mask(peer)

    def disconnect(self, address: str) -> None:
        """Drops the connection to a peer known to be dead (its queued messages are lost)."""
        with self._send_lock:
            self._disconnect_locked(address)

    def _disconnect_locked(self, address: str) -> None:
        peer = self._peers.pop(address, None)
        if peer is not None:
            peer.watch_token = None
            peer.queue.clear()
            self._lost(peer)
            self._down.discard(peer)

    def wake(self) -> None:
        """Interrupts a `poll` running in the I/O thread. A no-op once closed (wakeup.py)."""
        self._wake.wake()

    def nudge(self) -> None:
        """Wakes the thread waiting in `wait_events(reader=True)`: what it waits for was read and
        handled by the I/O thread. Pending until it next waits, if it is not waiting now."""
        self._nudge.wake()

    # ---- receiving (I/O thread only) -------------------------------------------------
    def watch_fd(self, fd: int, token: object) -> None:
        """Adds a raw fd (a pidfd, a pipe) to the poll set; `poll` reports `token` when readable."""
        self._epoll.register(fd, _IN)
        self._extra_fds[fd] = token

    def unwatch_fd(self, fd: int) -> None:
        if self._extra_fds.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def poll(self, timeout_ms: int | None) -> tuple[list[list], list[object]]:
        """Waits for input. Returns (messages, tokens of ready extra fds and dropped watched peers)."""
        return self.take(self.wait_events(timeout_ms))

    def wait_events(self, timeout_ms: int | None, reader: bool = False) -> list:
        """Waits for input; returns the ready fds, for `take`. Two threads may wait at once: the
        I/O thread, and one `reader` (a caller blocked in `get` reading its own reply, a worker's
        idle executor reading its next push: worker/core_worker.py `wait_reading`) on its own
        poll set, which alone watches the inbound connections between `reader_starts` and
        `reader_stops`. Reconnects are the I/O thread's."""
        epoll = self._reader_epoll if reader else self._epoll
        if self._down and not reader:
            due_ms = self._retry_down()
            if due_ms is not None:
                timeout_ms = due_ms if timeout_ms is None or timeout_ms < 0 else min(timeout_ms, due_ms)
        if self._backlog:  # connections with more to read: no waiting
            events = epoll.poll(0) + [(fd, _IN) for fd in list(self._backlog)]
        else:
            events = epoll.poll(-1 if timeout_ms is None else timeout_ms / 1000)
        for i, event in enumerate(events):
            if event[0] == self._inbound_fd:  # the nested set: which connections are ready
                return events[:i] + events[i + 1:] + self._inbound_epoll.poll(0)
        return events

    def poll_inbound(self) -> list:
        """The ready inbound connections, without waiting (a reader's spin: worker/spin_window.py)."""
        if self._backlog:
            return self._inbound_epoll.poll(0) + [(fd, _IN) for fd in list(self._backlog)]
        return self._inbound_epoll.poll(0)

    def reader_starts(self) -> None:
        """A thread reads the inbox itself from now on (`wait_events(reader=True)`): the I/O
        thread stops watching the inbound connections, so no message wakes it meanwhile. An
        arrival it was already woken for is still read by it (the reader is then nudged)."""
        with contextlib.suppress(OSError, ValueError):  # (closed: shutdown)
            self._epoll.modify(self._inbound_fd, 0)  # (not unregister: adding an epoll back is slow)

    def reader_stops(self) -> None:
        """The reading thread is done: the I/O thread watches the inbound connections again,
        and is woken at once if what arrived meanwhile is unread (the nested set is ready).
        Idempotent."""
        with contextlib.suppress(OSError, ValueError):
            self._epoll.modify(self._inbound_fd, _IN)

    def backlogged(self) -> bool:
        """Whether connections hold more than the last `take` read (the next poll reads on)."""
        return bool(self._backlog)

    def take(self, events: list) -> tuple[list[list], list[object]]:
        """Reads what `wait_events` found ready: (messages, tokens). One thread at a time (the
        caller serializes: a connection another thread emptied meanwhile reads nothing). A
        wake-up or a nudge is drained: waking was all it had to do."""
        messages: list[list] = []
        tokens: list[object] = []
        for fd, mask in events:
            inbound = self._inbound.get(fd)
            if inbound is not None:
                self._read(fd, inbound, messages)
            elif fd == self._listener.fileno():
                self._accept()
            elif fd == self._wake.fd:
                self._wake.drain()
            elif fd == self._nudge.fd:
                self._nudge.drain()
            elif fd in self._peer_by_fd:
                self._peer_event(self._peer_by_fd[fd], mask, tokens)
            else:
                token = self._extra_fds.get(fd)
                if token is not None:
                    tokens.append(token)
        return messages, tokens

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors: the peer retries
                log.warning("cannot accept a connection on %s: %s", self.address, exc)
                return
            sock.setblocking(False)
            self._inbound[sock.fileno()] = _Inbound(sock)
            # Edge-triggered, in the nested set that the reader's or the I/O thread's set
            # watches (see `__init__`)
            self._inbound_epoll.register(sock.fileno(), _IN | select.EPOLLET)

    def _read(self, fd: int, inbound: _Inbound, messages: list) -> None:
        """Reads what the connection holds (all of it: it is edge-triggered; a short read
        empties a stream socket's queue, and what arrives later is a new edge). After
        `READS_PER_EVENT` reads the rest waits in `_backlog` for the next poll."""
        sock, buf = inbound.sock, inbound.buf
        self._backlog.discard(fd)
        for _ in range(READS_PER_EVENT):
            try:
                data = sock.recv(READ_CHUNK)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self._close_inbound(fd, inbound)
                break
            buf += data
            if len(data) < READ_CHUNK:
                break
        else:
            self._backlog.add(fd)  # more may be there: read on at the next poll, without waiting
        if buf and not _frame_messages(buf, messages):
            self.malformed_connections += 1
            log.warning("closed a connection to %s that sent what is not an ownrun message", self.address)
            self._close_inbound(fd, inbound)

    def _close_inbound(self, fd: int, inbound: _Inbound) -> None:
        self._inbound.pop(fd, None)
        self._backlog.discard(fd)
        with contextlib.suppress(OSError, ValueError):
            self._inbound_epoll.unregister(fd)
        inbound.sock.close()

    def _peer_event(self, peer: _Peer, mask: int, tokens: list) -> None:
        with self._send_lock:
            if peer.sock is None:
                return
            if mask & (_GONE | _IN):  # a peer never writes to us on this connection: it closed
                token = peer.watch_token
                peer.watch_token = None
                self._lost(peer)
                if token is not None:
                    tokens.append(token)
                return
            if mask & _OUT:
                self._flush(peer)

    def _retry_down(self) -> int | None:
        """Tries the peers whose retry is due; drops those refused for `GIVE_UP_S`. Returns the
        milliseconds until the next retry (None: none left)."""
        now = time.monotonic()
        with self._send_lock:
            for peer in [p for p in self._down if p.retry_at <= now]:
                if self._peers.get(peer.address) is not peer:
                    self._down.discard(peer)
                elif peer.refused_since and now - peer.refused_since >= GIVE_UP_S:
                    self.dropped += len(peer.queue)
                    log.info("dropped %d message(s) to %s: it has refused connections for %.0f s",
                             len(peer.queue), peer.address, now - peer.refused_since)
                    self._disconnect_locked(peer.address)
                elif self._connect(peer) and peer.queue:
                    self._flush(peer)
            if not self._down:
                return None
            return max(1, int((min(p.retry_at for p in self._down) - time.monotonic()) * 1000) + 1)

    def close(self) -> None:
        with self._send_lock:
            if self.closed:
                return
            self.closed = True
            for address in list(self._peers):
                self._disconnect_locked(address)
            for fd, inbound in list(self._inbound.items()):
                self._close_inbound(fd, inbound)
            self._listener.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            self._epoll.close()
            self._reader_epoll.close()
            self._inbound_epoll.close()
            self._wake.close()
            self._nudge.close()


class _ConnectionEvents:
    """The connection events of one peer (`monitor_peer`), as zmq names them: (event, value)
    pairs; a unix socket's connection is its handshake (no security mechanism to agree on)."""

    def __init__(self, peer: _Peer):
        self._peer = peer

    def events(self) -> list[tuple[int, int]]:
        events, self._peer.events = self._peer.events or [], []
        return events


def _frame_messages(buf: bytearray, messages: list) -> bool:
    """Moves the whole messages at the start of `buf` to `messages`; False if `buf` does not
    hold ownrun messages."""
    start, size = 0, len(buf)
    view = memoryview(buf)
    try:
        while size - start >= 4:
            word = _U32.unpack_from(buf, start)[0]
            count = word & MAX_FRAMES
            if word & ~MAX_FRAMES != MAGIC or count == 0:
                return False
            body = start + 4 + 4 * count
            if size < body:
                break
            lengths = _header(count).unpack_from(buf, start)[1:]
            if max(lengths) > MAX_FRAME:
                return False
            end = body + sum(lengths)
            if size < end:
                break
            frames = []
            for length in lengths:
                frames.append(bytes(view[body:body + length]))
                body += length
            messages.append(frames)
            start = end
    finally:
        view.release()
    if start:
        del buf[:start]
    return True


def _rest(buffers: list, written: int) -> list:
    """What is left of one message's `buffers` after its first `written` bytes went out."""
    if not written:
        return list(buffers)
    for i, buf in enumerate(buffers):
        size = _nbytes(buf)
        if written < size:
            return [memoryview(buf).cast("B")[written:], *buffers[i + 1:]]
        written -= size
    return []
