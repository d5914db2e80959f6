"""The unix transport's wire format (rpc/unix_transport.py), without sockets: a message framed
and cut anywhere in the byte stream is read back whole and in order; bytes that are not ownrun
messages are refused; a partly written message resumes at the right byte."""

from __future__ import annotations

import random

from ownrun.engine.rpc.unix_transport import MAGIC, _frame_messages, _rest, frame_message


def _wire(frames: list) -> bytes:
    return b"".join(bytes(memoryview(b).cast("B")) for b in frame_message(frames))


def test_messages_cut_at_every_place_in_the_stream_are_read_whole_and_in_order():
    rng = random.Random(7)
    sent = [[rng.randbytes(rng.choice([0, 1, 9, 300, 70_000])) for _ in range(rng.randrange(1, 5))]
            for _ in range(40)]
    stream = b"".join(_wire(m) for m in sent)
    for cut_every in (1, 3, 64, 4096, len(stream)):
        buf, received = bytearray(), []
        for start in range(0, len(stream), cut_every):
            buf += stream[start:start + cut_every]
            assert _frame_messages(buf, received)
        assert received == sent and not buf


def test_a_message_not_yet_complete_stays_in_the_buffer():
    wire = _wire([b"head", b"x" * 1000])
    buf, received = bytearray(wire[:-1]), []
    assert _frame_messages(buf, received) and received == [] and len(buf) == len(wire) - 1
    buf += wire[-1:]
    assert _frame_messages(buf, received) and received == [[b"head", b"x" * 1000]]


def test_bytes_that_are_not_ownrun_messages_are_refused():
    zmq_greeting = b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03\x00NULL"
    for junk in (zmq_greeting, b"\x00\x00\x00\x00rest", MAGIC.to_bytes(4, "little") + b"\0" * 8,
                 (MAGIC | 1).to_bytes(4, "little") + b"\xff\xff\xff\xff", b"GET / HTTP/1.1\r\n"):
        assert not _frame_messages(bytearray(junk), [])


def test_frames_of_any_buffer_type_are_framed_by_their_size_in_bytes():
    import array

    numbers = array.array("d", [1.5, 2.5, 3.5])  # len() counts 3 items, the wire 24 bytes
    buf, received = bytearray(_wire([b"h", numbers, memoryview(b"abc")])), []
    assert _frame_messages(buf, received)
    assert received == [[b"h", numbers.tobytes(), b"abc"]]


def test_the_rest_of_a_partly_written_message_starts_at_the_first_unwritten_byte():
    import array

    message = frame_message([b"header", array.array("i", [1, 2, 3]), b"tail"])
    whole = b"".join(bytes(memoryview(b).cast("B")) for b in message)
    for written in range(len(whole)):
        assert b"".join(bytes(b) for b in _rest(message, written)) == whole[written:]
