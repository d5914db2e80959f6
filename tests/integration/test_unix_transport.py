"""The unix-socket transport (rpc/unix_transport.py) with real sockets: messages of any size
arrive whole and in order, a send never blocks on a slow or absent peer, a peer that binds late
still gets what was sent to it, a peer's exit is reported to whoever watches it, a connection
that does not speak ownrun's format is closed and counted, and nothing is left behind."""

from __future__ import annotations

import contextlib
import os
import socket
import threading

import pytest
from ownrun.engine.rpc import transport as T
from ownrun.engine.rpc.unix_transport import MAX_FRAMES, UnixTransport

from tests.conftest import wait_for


@pytest.fixture()
def sockets_dir(tmp_path):
    path = tmp_path / "s"
    path.mkdir(mode=0o700)
    return "ipc://" + str(path)


def _receive(transport: UnixTransport, count: int, timeout: float = 20.0) -> list[list]:
    got: list[list] = []
    wait_for(lambda: got.extend(transport.poll(20)[0]) or len(got) >= count, timeout=timeout,
             message=f"{count} messages")
    return got


@contextlib.contextmanager
def _flushing(transport: UnixTransport):
    """A thread polling `transport` as its I/O thread would: it writes what a peer's socket
    did not take at once."""
    stop = threading.Event()
    flusher = threading.Thread(target=lambda: [transport.poll(10) for _ in iter(stop.is_set, True)])
    flusher.start()
    try:
        yield
    finally:
        stop.set()
        flusher.join()


def test_an_ipc_transport_without_a_key_is_a_unix_transport_and_tcp_stays_zmq(sockets_dir):
    unix, tcp = T.Transport(sockets_dir), T.Transport("127.0.0.1")
    try:
        assert isinstance(unix, UnixTransport) and unix.address.startswith(sockets_dir + "/")
        assert isinstance(tcp, T.ZmqTransport)
    finally:
        unix.close()
        tcp.close()


def test_the_zmq_switch_makes_an_ipc_transport_speak_zmq(sockets_dir, monkeypatch):
    monkeypatch.setenv(T.ENV_ZMQ_IPC, "1")
    transport = T.Transport(sockets_dir)
    try:
        assert isinstance(transport, T.ZmqTransport) and transport.address.startswith(sockets_dir + "/")
    finally:
        transport.close()


def test_messages_of_every_size_arrive_whole_and_in_order_while_the_sender_flushes(sockets_dir):
    a, b = UnixTransport(sockets_dir), UnixTransport(sockets_dir)
    big = os.urandom(8 << 20)  # far above the socket's buffer: written over many polls
    sent = [[T.pack([i]), big if i % 10 == 3 else os.urandom(i * 37)] for i in range(40)]
    try:
        with _flushing(a):
            for frames in sent:
                assert a.send(b.address, frames)
            assert _receive(b, len(sent)) == sent
    finally:
        a.close()
        b.close()


def test_a_message_of_more_frames_than_one_sendmsg_takes_arrives_whole(sockets_dir):
    """(A task with thousands of by-reference arguments: a frame each. The kernel refuses a
    sendmsg of more than IOV_MAX = 1024 buffers; the message used to be resent forever.)"""
    a, b = UnixTransport(sockets_dir), UnixTransport(sockets_dir)
    many = [T.pack([i]) for i in range(5000)]
    try:
        with _flushing(a):
            assert a.send(b.address, many)
            assert a.send(b.address, [b"after it"])
            assert _receive(b, 2) == [many, [b"after it"]]
    finally:
        a.close()
        b.close()


def test_a_send_to_a_peer_that_binds_later_is_delivered_when_it_listens(sockets_dir):
    sender = UnixTransport(sockets_dir)
    late_address = f"{sockets_dir}/late-peer"
    try:
        assert sender.send(late_address, [b"before it listened"])  # queued: nothing listens yet
        late = UnixTransport(sockets_dir, port="late-peer")
        try:
            got: list = []
            wait_for(lambda: (sender.poll(10), got.extend(late.poll(10)[0]))[1] or got,
                     message="the queued message after the peer bound")
            assert got == [[b"before it listened"]]
        finally:
            late.close()
    finally:
        sender.close()


def test_sends_to_a_peer_that_does_not_read_never_block_and_arrive_once_it_reads(sockets_dir):
    a, b = UnixTransport(sockets_dir), UnixTransport(sockets_dir)
    chunk = b"x" * (64 << 10)
    try:
        for i in range(400):  # 25 MiB: far more than the kernel holds for a peer not reading
            assert a.send(b.address, [T.pack([i]), chunk])
        got: list = []
        wait_for(lambda: (a.poll(5), got.extend(b.poll(5)[0]))[1] or len(got) == 400,
                 message="400 queued messages")
        assert [T.unpack(m[0])[0] for m in got] == list(range(400))
    finally:
        a.close()
        b.close()


def test_a_watched_peer_that_closes_is_reported_once_and_its_queue_is_dropped_on_disconnect(sockets_dir):
    watcher, peer = UnixTransport(sockets_dir), UnixTransport(sockets_dir)
    try:
        watcher.watch_peer(peer.address, ("gone", peer.address))
        peer.close()
        tokens: list = []
        wait_for(lambda: tokens.extend(watcher.poll(20)[1]) or tokens, message="the drop")
        assert tokens == [("gone", peer.address)]
        assert watcher.send(peer.address, [b"to nobody"])  # queued for a reconnect, like zmq
        watcher.disconnect(peer.address)
        assert not watcher._down and peer.address not in watcher._peers
    finally:
        watcher.close()


def test_a_connection_that_does_not_speak_ownrun_is_closed_counted_and_others_go_on(sockets_dir):
    server, client = UnixTransport(sockets_dir), UnixTransport(sockets_dir)
    rogue = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        rogue.connect(server.address[len("ipc://"):])
        rogue.sendall(b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7fzmq greeting")
        wait_for(lambda: server.poll(20) and server.malformed_connections == 1, message="the refusal")
        rogue.settimeout(10)
        assert rogue.recv(10) == b""  # closed by the server
        assert client.send(server.address, [b"still served"])
        assert _receive(server, 1) == [[b"still served"]]
    finally:
        rogue.close()
        server.close()
        client.close()


def test_close_removes_the_socket_file_and_every_descriptor(sockets_dir):
    before = set(os.listdir("/proc/self/fd"))
    a, b = UnixTransport(sockets_dir), UnixTransport(sockets_dir)
    a.send(b.address, [b"hello"])
    _receive(b, 1)
    b.send(a.address, [b"back"])
    _receive(a, 1)
    a.close()
    b.close()
    assert os.listdir(sockets_dir[len("ipc://"):]) == []
    assert set(os.listdir("/proc/self/fd")) <= before
    assert not a.send(b.address, [b"after close"])


def test_a_queued_message_keeps_what_its_buffers_held_when_sent(sockets_dir):
    import numpy as np

    a, b = UnixTransport(sockets_dir), UnixTransport(sockets_dir)
    filler = b"f" * (4 << 20)  # fills the socket: the next message waits in the queue
    array = np.arange(20_000, dtype=np.int64)  # 160 KB, sent by reference
    try:
        assert a.send(b.address, [b"filler", filler])
        assert a.send(b.address, [b"array", array])
        array[:] = -1  # the sender's next call changes it
        got: list = []
        wait_for(lambda: (a.poll(5), got.extend(b.poll(5)[0]))[1] or len(got) == 2, message="both messages")
        assert np.array_equal(np.frombuffer(got[1][1], np.int64), np.arange(20_000))
    finally:
        a.close()
        b.close()


def test_a_peer_that_never_listens_is_retried_ever_less_often_then_given_up(sockets_dir, monkeypatch):
    from ownrun.engine.rpc import unix_transport

    monkeypatch.setattr(unix_transport, "SLOW_AFTER_S", 0.2)
    monkeypatch.setattr(unix_transport, "RECONNECT_SLOW_S", 0.1)
    monkeypatch.setattr(unix_transport, "GIVE_UP_S", 0.5)
    sender = UnixTransport(sockets_dir)
    try:
        assert sender.send(f"{sockets_dir}/never-bound", [b"into the void"])
        assert sender._down  # queued, retried from the I/O thread's polls
        wait_for(lambda: sender.poll(20) and not sender._down, timeout=10, message="the give-up")
        assert sender.dropped == 1 and f"{sockets_dir}/never-bound" not in sender._peers
        assert sender._retry_down() is None  # nothing left to retry: the I/O loop sleeps as long as it likes
    finally:
        sender.close()


def _blocked_in_poll(thread: threading.Thread) -> bool:
    with open(f"/proc/self/task/{thread.native_id}/wchan") as wchan:
        return "epoll" in wchan.read()


def _waiter(transport: UnixTransport, reader: bool, out: list) -> threading.Thread:
    thread = threading.Thread(target=lambda: out.extend(transport.wait_events(20_000, reader=reader)))
    thread.start()
    return thread


def test_a_message_wakes_the_reading_thread_if_it_waits_and_only_it(sockets_dir):
    """Both the I/O thread and a reader (a driver's get, an idle executor) wait: between
    `reader_starts` and `reader_stops` a message wakes the reader alone; the I/O thread sleeps
    on until its own wake-up."""
    a, b = UnixTransport(sockets_dir), UnixTransport(sockets_dir)
    try:
        a.send(b.address, [b"hello"])
        assert _receive(b, 1) == [[b"hello"]]  # b has accepted a's connection
        b.reader_starts()
        for _ in range(3):
            io_events, reader_events = [], []
            reader = _waiter(b, True, reader_events)
            wait_for(lambda t=reader: _blocked_in_poll(t), timeout=10, message="the reader polling")
            io_thread = _waiter(b, False, io_events)
            wait_for(lambda t=io_thread: _blocked_in_poll(t), timeout=10, message="the I/O thread polling")
            a.send(b.address, [b"for the reader"])
            reader.join(20)
            assert not reader.is_alive() and reader_events
            assert b.take(reader_events)[0] == [[b"for the reader"]]
            assert io_thread.is_alive() and not io_events
            b.wake()
            io_thread.join(20)
            assert not io_thread.is_alive()
            assert b.take(io_events) == ([], [])  # only its wake-up
        b.reader_stops()
    finally:
        a.close()
        b.close()


def test_a_message_wakes_the_io_thread_while_no_reader_waits(sockets_dir):
    a, b = UnixTransport(sockets_dir), UnixTransport(sockets_dir)
    try:
        a.send(b.address, [b"hello"])
        assert _receive(b, 1) == [[b"hello"]]
        io_events: list = []
        io_thread = _waiter(b, False, io_events)
        wait_for(lambda: _blocked_in_poll(io_thread), timeout=10, message="the I/O thread polling")
        a.send(b.address, [b"for the I/O thread"])
        io_thread.join(20)
        assert not io_thread.is_alive() and b.take(io_events)[0] == [[b"for the I/O thread"]]
        b.nudge()  # a nudge is the reader's: the I/O thread does not see it
        assert b.wait_events(0) == [] and b.wait_events(0, reader=True)
    finally:
        a.close()
        b.close()


def test_a_peer_bound_again_at_its_address_gets_the_next_send_without_waiting_for_a_retry(sockets_dir, monkeypatch):
    """A one-shot client's inbox is bound again by the next query: the send that finds the old
    connection closed connects to the new socket at once."""
    from ownrun.engine.rpc import unix_transport

    monkeypatch.setattr(unix_transport, "RECONNECT_S", 3600.0)  # a retry would come after the test
    a, b = UnixTransport(sockets_dir), UnixTransport(sockets_dir, port=7)
    try:
        a.send(b.address, [b"first"])
        assert _receive(b, 1) == [[b"first"]]
        address = b.address
        b.close()
        b = UnixTransport(sockets_dir, port=7)
        assert b.address == address
        assert a.send(address, [b"second"])
        assert _receive(b, 1) == [[b"second"]]
    finally:
        a.close()
        b.close()


def test_a_send_queued_for_a_peer_not_listening_wakes_the_sleeping_io_thread_to_retry_it(sockets_dir):
    """The send may come from any thread (a worker's executor replying): the I/O thread, which
    retries the connection, must not sleep through its poll first."""
    a = UnixTransport(sockets_dir)
    try:
        polled: list = []
        io_thread = threading.Thread(target=lambda: polled.append(a.poll(600_000)))
        io_thread.start()
        wait_for(lambda: _blocked_in_poll(io_thread), timeout=10, message="the I/O thread polling")
        assert a.send(sockets_dir + "/later", [b"queued"])  # nothing listens there yet
        io_thread.join(20)
        assert not io_thread.is_alive() and polled == [([], [])]
        b = UnixTransport(sockets_dir, port="later")
        try:
            wait_for(lambda: a.poll(20) is not None and b.poll(20)[0] == [[b"queued"]], timeout=20,
                     message="the queued message after the retry")
        finally:
            b.close()
    finally:
        a.close()


def test_while_a_thread_reads_no_message_wakes_the_io_thread_and_what_it_leaves_unread_does(sockets_dir):
    """While a thread reads the inbox it alone watches the inbound connections: a message that
    arrives while it is not inside a poll (spinning on `poll_inbound`, or preempted), even one
    of several socket buffers that arrives in parts, does not wake the I/O thread. When the
    reader stops, what arrived meanwhile and is still unread wakes the I/O thread at once."""
    a, b = UnixTransport(sockets_dir), UnixTransport(sockets_dir)
    big = os.urandom(300_000)
    try:
        a.send(b.address, [b"hello"])
        assert _receive(b, 1) == [[b"hello"]]
        b.reader_starts()
        io_events: list = []
        io_thread = _waiter(b, False, io_events)
        wait_for(lambda: _blocked_in_poll(io_thread), timeout=10, message="the I/O thread polling")
        a.send(b.address, [b"big", big])
        got: list = []
        wait_for(lambda: got.extend(b.take(b.poll_inbound())[0]) or got, timeout=20, message="the big message")
        assert got == [[b"big", big]]
        a.send(b.address, [b"late"])  # (a unix socket's send queues it at the receiver at once)
        assert io_thread.is_alive() and not io_events and _blocked_in_poll(io_thread)
        b.reader_stops()  # "late" is unread: the I/O thread is woken for it
        io_thread.join(20)
        assert not io_thread.is_alive()
        assert b.take(io_events)[0] == [[b"late"]]
    finally:
        a.close()
        b.close()


def test_a_message_of_more_frames_than_the_header_counts_is_refused_not_garbled(sockets_dir):
    a, b = UnixTransport(sockets_dir), UnixTransport(sockets_dir)
    try:
        too_many = [b"x"] * (MAX_FRAMES + 1)
        assert a.send(b.address, too_many) is False and a.dropped == 1
        assert a.send(b.address, []) is False and a.dropped == 2
        a.send(b.address, [b"after"])
        assert _receive(b, 1) == [[b"after"]]  # the connection is intact
        assert b.malformed_connections == 0
    finally:
        a.close()
        b.close()


def test_messages_sent_together_arrive_whole_and_in_order_or_none_is_sent(sockets_dir):
    a, b = UnixTransport(sockets_dir), UnixTransport(sockets_dir)
    big = os.urandom(4 << 20)  # more than the socket takes at once: the rest is flushed
    together = [[T.pack([1]), b"one"], [T.pack([2]), big], [T.pack([3])]]
    try:
        with _flushing(a):
            assert a.send_many(b.address, together)
            a.send(b.address, [T.pack([4])])
            assert _receive(b, 4) == [*together, [T.pack([4])]]
            assert a.send_many(b.address, [[T.pack([5])], []]) is False and a.dropped == 1
            a.send(b.address, [T.pack([6])])
            assert _receive(b, 1) == [[T.pack([6])]]  # 5 was not sent without its partner
    finally:
        a.close()
        b.close()


def test_the_zmq_transport_sends_messages_together_one_after_the_other():
    a, b = T.ZmqTransport("127.0.0.1"), T.ZmqTransport("127.0.0.1")
    try:
        assert a.send_many(b.address, [[T.pack([1]), b"x"], [T.pack([2])]])
        got: list = []
        wait_for(lambda: got.extend(b.poll(20)[0]) or len(got) >= 2, timeout=20, message="2 messages")
        assert got == [[T.pack([1]), b"x"], [T.pack([2])]]
    finally:
        a.close()
        b.close()
