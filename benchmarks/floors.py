"""The machine's floors: what the hardware and the transport allow, for `compare`.

    python -m ownrun.benchmarks.floors          # prints them

Owns five measurements that use no runtime at all:
* `reqrep_us`: one zmq REQ/REP round trip over TCP loopback with a msgpack header each way,
  to an echo process (the least a synchronous task or actor call can cost);
* `pushpull_per_s`: round trips per second through PUSH/PULL sockets with up to `window`
  messages in flight (the most pipelined tasks can reach);
* `memcpy_gbps(nbytes, fresh)`: numpy copy bandwidth into warm (already touched) or fresh
  (newly mapped, so page-faulting) memory (what `put` costs at least);
* `python_us(pause_s)`: a fixed piece of pure Python (a msgpack header and a pickle, as a task
  submission builds them) back to back and each run after sleeping `pause_s`: what this machine
  charges a process that works in short bursts between sleeps, as a video owner does (on a VM
  whose idle vCPUs halt, the code runs several times slower right after a sleep);
and the echo peers both run in a child process started here (`python -m
ownrun.benchmarks.floors --echo ...`) and killed by pid when the measurement ends.
How it fails: a peer that does not answer within `timeout_s` raises TimeoutError.
Not thread-safe; each function owns its sockets and its peer for its duration.
"""
from __future__ import annotations

import argparse
import mmap
import pickle
import statistics
import subprocess
import sys
import time

import msgpack
import numpy as np
import zmq
from ownrun.benchmarks.bodies import PACE_S

MiB = 2**20
HEADER = {"type": "PUSH_TASK", "task_id": b"\0" * 24, "fn": b"\0" * 16, "args": 0}


def _peer(kind: str) -> tuple[subprocess.Popen, str, str]:
    """Starts an echo peer; returns it and the addresses it listens on (in, out)."""
    proc = subprocess.Popen([sys.executable, "-m", "ownrun.benchmarks.floors", "--echo", kind],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().split()
    if len(line) != 2:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"echo peer {kind} did not start: {line}")
    return proc, line[0], line[1]


def _stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def _echo(kind: str) -> None:
    """The peer: REP answers each request; PULL->PUSH sends each message back."""
    ctx = zmq.Context()
    if kind == "rep":
        sock = ctx.socket(zmq.REP)
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        print(f"tcp://127.0.0.1:{port} -", flush=True)
        while True:
            header = msgpack.unpackb(sock.recv(), raw=False)
            sock.send(msgpack.packb(header))
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    p_in = pull.bind_to_random_port("tcp://127.0.0.1")
    p_out = push.bind_to_random_port("tcp://127.0.0.1")
    print(f"tcp://127.0.0.1:{p_in} tcp://127.0.0.1:{p_out}", flush=True)
    while True:
        push.send(msgpack.packb(msgpack.unpackb(pull.recv(), raw=False)))


def reqrep_us(n: int = 2000, timeout_s: float = 30.0) -> float:
    """Mean µs of `n` sequential REQ/REP round trips (after 100 warm-up)."""
    proc, address, _ = _peer("rep")
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1e3))
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(address)
        for i in range(n + 100):
            if i == 100:
                start = time.perf_counter()
            sock.send(msgpack.packb(HEADER))
            msgpack.unpackb(sock.recv(), raw=False)
        return (time.perf_counter() - start) / n * 1e6
    except zmq.Again as exc:
        raise TimeoutError("the REQ/REP echo peer did not answer") from exc
    finally:
        sock.close()
        ctx.term()
        _stop(proc)


def pushpull_per_s(n: int = 50_000, window: int = 1000, timeout_s: float = 30.0) -> float:
    """Round trips per second of `n` msgpack messages through PUSH/PULL, `window` in flight."""
    proc, to_peer, from_peer = _peer("pushpull")
    ctx = zmq.Context()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1e3))
    for sock in (push, pull):
        sock.setsockopt(zmq.LINGER, 0)
    try:
        push.connect(to_peer)
        pull.connect(from_peer)
        payload = msgpack.packb(HEADER)
        for _ in range(100):  # warm-up: the connections are up both ways
            push.send(payload)
            pull.recv()
        start = time.perf_counter()
        sent = received = 0
        while sent < min(window, n):
            push.send(payload)
            sent += 1
        while received < n:
            msgpack.unpackb(pull.recv(), raw=False)
            received += 1
            if sent < n:
                push.send(payload)
                sent += 1
        return n / (time.perf_counter() - start)
    except zmq.Again as exc:
        raise TimeoutError("the PUSH/PULL echo peer did not answer") from exc
    finally:
        push.close()
        pull.close()
        ctx.term()
        _stop(proc)


def memcpy_gbps(nbytes: int, fresh: bool, repeat: int = 5) -> float:
    """Median GB/s of copying `nbytes` from a warm array into warm or fresh memory."""
    src = np.ones(nbytes // 8)
    warm = np.empty_like(src)
    warm[:] = 0
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        if fresh:  # an anonymous mapping of its own: every page faults on first write
            region = mmap.mmap(-1, nbytes)
            dst = np.frombuffer(region, dtype=src.dtype)
            np.copyto(dst, src)
        else:
            np.copyto(warm, src)
        times.append(time.perf_counter() - start)
        if fresh:
            del dst
            region.close()
    return nbytes / statistics.median(times) / 1e9


def _python_work() -> int:
    """Pure Python shaped like a task submission: a header packed and unpacked, a spec pickled."""
    header = dict(HEADER, args=[1, 2.0, "x"], deps=[[b"\1" * 24, "ipc:///tmp/owner"]] * 3)
    back = msgpack.unpackb(msgpack.packb(header))
    spec = pickle.dumps((back, [i * 1.5 for i in range(20)], {"num_cpus": 1.0}))
    return len(spec) + sum(len(str(key)) for key in back)


def python_us(pause_s: float, n: int = 200) -> float:
    """Median µs of `_python_work`, each call after sleeping `pause_s` (0: back to back)."""
    for _ in range(20):
        _python_work()
    times = []
    for _ in range(n):
        if pause_s:
            time.sleep(pause_s)
        start = time.perf_counter()
        _python_work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def measure(quick: bool = False, big: int = 100 * MiB) -> dict[str, float]:
    """Every floor, keyed as `compare` reads them ("100mib" is `big` bytes)."""
    return {
        "python_burst_us": python_us(0.0, 50 if quick else 500),
        "python_paced_us": python_us(PACE_S, 20 if quick else 200),
        "reqrep_us": reqrep_us(300 if quick else 2000),
        "pushpull_per_s": pushpull_per_s(5000 if quick else 50_000),
        "memcpy_warm_1mib_gbps": memcpy_gbps(MiB, fresh=False, repeat=20),
        "memcpy_fresh_1mib_gbps": memcpy_gbps(MiB, fresh=True, repeat=20),
        "memcpy_warm_100mib_gbps": memcpy_gbps(big, fresh=False),
        "memcpy_fresh_100mib_gbps": memcpy_gbps(big, fresh=True),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the machine's floors")
    parser.add_argument("--echo", choices=["rep", "pushpull"], help="run as an echo peer")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.echo:
        _echo(args.echo)
    for key, value in measure(args.quick, (4 if args.quick else 100) * MiB).items():
        print(f"{key:28} {value:12,.2f}")
