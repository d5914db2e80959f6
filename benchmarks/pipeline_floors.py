"""The mini video pipeline's floors on this machine, for `compare`'s "mini video pipeline" row.

    python -m ownrun.benchmarks.pipeline_floors [--cpus N] [--quick]   # prints them

Owns four measurements of `bodies.pipeline` that use no runtime at all:
* `side_by_side_fps(cpus)`: `cpus` processes each computing the whole pipeline serially at
  the same moment (started together behind a barrier), their rates summed: what the cores
  allow with no messages at all (on a VM, two busy processes often get less than twice one);
* `dispatcher_fps(workers)`: the pipeline through the least a task runtime of Python
  processes can do: this process resolves each task's dependencies with a counter per task,
  pickles the function's name and argument values inline into a zmq PUSH socket to one of
  `workers` worker processes (up to `DEPTH` tasks in flight on each), and unpickles each result
  from one PULL socket. No store, no ids, no failure handling: the floor of one message each
  way per task, which a runtime's per-task overhead is measured against. The dispatcher checks
  its results against a serial run (a wrong value is an AssertionError).
* `dispatcher_fps(workers, batch=BATCH)`: the same dispatcher, but each message carries every
  task ready for a worker (up to `BATCH` in flight on each) and a worker returns its results
  `BATCH` at a time (what arrived while it ran joins its batch): a fraction of the messages and
  wake-ups for the same work, which shows how much of the gap to the cores is the messages.
* `video_worker_stages_fps`, from the unbatched runs: the CPU time (`thread_time`) the stages
  themselves take in the dispatcher's workers, per frame, turned into the rate `cpus` cores
  would reach doing nothing else: what is left of the pipeline once messaging and scheduling
  cost nothing, with each stage run in whichever process its task went to (its arguments
  written by another process, so possibly on colder caches than in the serial run). Against
  the serial rate it separates the compute's own cost in workers from the messages'.
Safe on a shared machine as the embedded cluster is: the dispatcher's sockets are unix sockets
(`ipc://`) in a private 0700 directory of its own, so only its user can connect and send it a
pickle; the directory is removed with the dispatcher.
The peers are child processes (`python -m ownrun.benchmarks.pipeline_floors --peer ...`),
killed by pid when the measurement ends, also on failure.
How it fails: a peer that does not answer within `timeout_s` raises TimeoutError.
"""
from __future__ import annotations

import argparse
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from typing import Any

import zmq
from ownrun.benchmarks import bodies

DEPTH = 16  # tasks in flight per worker: the best of 1, 2, 4, 8, 16 measured on 2 CPUs
BATCH = 64  # the batched dispatcher: tasks in flight per worker, and results per reply
STOP = b"stop"


def _peer_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ownrun.benchmarks.pipeline_floors", "--peer", *args]


def _kill(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.wait()


def _serial_values(videos: int, frames: int) -> list[list[Any]]:
    return bodies.pipeline(videos, frames, lambda fn: fn)


# --- N serial processes side by side ------------------------------------------------------------

def _serial_peer(videos: int, frames: int, repeat: int) -> None:
    """Warms up, says "ready", waits for "go" on stdin, then prints its frames/s."""
    _serial_values(1, 3)  # warm-up: OpenCV, the scenes
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.perf_counter()
    for _ in range(repeat):
        _serial_values(videos, frames)
    print(videos * frames * repeat / (time.perf_counter() - start), flush=True)


def side_by_side_fps(cpus: int, sizes: bodies.Sizes, repeat: int = 3,
                     timeout_s: float = 120.0) -> float:
    """Summed frames/s of `cpus` processes computing the pipeline serially at once."""
    command = _peer_command("serial", str(sizes.videos), str(sizes.frames), str(repeat))
    procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(cpus)]
    try:
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"serial peer {proc.pid} did not start")
        for proc in procs:  # the barrier: every peer is warm before any starts
            proc.stdin.write("go\n")
            proc.stdin.flush()
        deadline = time.monotonic() + timeout_s
        rates = []
        for proc in procs:
            try:
                out, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired as exc:
                raise TimeoutError(f"serial peer {proc.pid} took over {timeout_s:.0f} s") from exc
            rates.append(float(out.strip()))
        return sum(rates)
    finally:
        _kill(procs)


# --- the minimal dispatcher ------------------------------------------------------------------

def _worker_peer(tasks_address: str, results_address: str, reply_every: str) -> None:
    """Runs the tasks of each message, a list of (task index, stage name, argument values), and
    sends back lists of (index, result, the stage's CPU seconds in this thread): one list per
    task when `reply_every` is 1, else up to `reply_every` results per list, taking the tasks
    that arrived meanwhile into the same batch."""
    context = zmq.Context()
    tasks, results = context.socket(zmq.PULL), context.socket(zmq.PUSH)
    tasks.connect(tasks_address)
    results.connect(results_address)
    stages = {fn.__name__: fn for fn in bodies.STAGES}
    batch = int(reply_every)
    queue: deque = deque()
    while True:
        if not queue:
            message = tasks.recv()
            if message == STOP:
                return
            queue.extend(pickle.loads(message))
        done = []
        while queue and len(done) < batch:
            index, name, args = queue.popleft()
            started = time.thread_time()
            value = stages[name](*args)
            done.append((index, value, time.thread_time() - started))
            while batch > 1 and (message := _poll(tasks)) is not None:
                if message == STOP:
                    return
                queue.extend(pickle.loads(message))
        results.send(pickle.dumps(done, protocol=5))


def _poll(sock: zmq.Socket) -> bytes | None:
    try:
        return sock.recv(zmq.NOBLOCK)
    except zmq.Again:
        return None


class _Task:
    __slots__ = ("name", "args", "value", "waiting", "dependents", "worker")

    def __init__(self, name: str, args: tuple) -> None:
        self.name, self.args, self.value, self.worker = name, args, None, -1
        self.waiting, self.dependents = 0, []


class _Dispatcher:
    """The driver's side: a DAG of `_Task`s built by `bodies.pipeline`, run on the workers."""

    def __init__(self, workers: int, timeout_s: float, batch: int = 1) -> None:
        self.batch = batch  # 1: a message per task and per result; else up to `batch` each
        self.directory = tempfile.mkdtemp(prefix="ownrun-floor-")  # 0700: only this user
        self.context = zmq.Context()
        self.sockets, self.procs = [], []
        try:
            self.results = self.context.socket(zmq.PULL)
            self.results.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1e3))
            results_address = f"ipc://{self.directory}/results"
            self.results.bind(results_address)
            for worker in range(workers):
                sock = self.context.socket(zmq.PUSH)
                sock.setsockopt(zmq.SNDTIMEO, int(timeout_s * 1e3))  # no worker connected
                tasks_address = f"ipc://{self.directory}/tasks-{worker}"
                sock.bind(tasks_address)
                self.sockets.append(sock)
                self.procs.append(subprocess.Popen(
                    _peer_command("worker", tasks_address, results_address, str(batch)),
                    stdin=subprocess.DEVNULL))
        except BaseException:  # the workers started so far go with the sockets
            self.close()
            raise
        self.tasks: list[_Task] = []
        self.ready: deque[int] = deque()

    def submitter(self, fn):
        def submit(*args):
            task = _Task(fn.__name__, args)
            index = len(self.tasks)
            for arg in args:
                if isinstance(arg, _Ref):
                    task.waiting += 1
                    self.tasks[arg.index].dependents.append(index)
            self.tasks.append(task)
            if not task.waiting:
                self.ready.append(index)
            return _Ref(index)
        return submit

    def run(self, videos: int, frames: int) -> tuple[float, float, list[list[Any]]]:
        """Builds and runs the pipeline; returns its frames/s, the stages' CPU seconds per
        frame in the workers, and the warp results."""
        self.tasks, self.ready = [], deque()
        stage_cpu_s = 0.0
        start = time.perf_counter()
        refs = bodies.pipeline(videos, frames, self.submitter)
        in_flight = [0] * len(self.sockets)
        depth = DEPTH if self.batch == 1 else self.batch
        remaining = len(self.tasks)
        ready = self.ready
        while remaining:
            outgoing: list[list] = [[] for _ in self.sockets]
            while ready:
                worker = min(range(len(in_flight)), key=in_flight.__getitem__)
                if in_flight[worker] >= depth:
                    break
                index = ready.popleft()
                task = self.tasks[index]
                args = tuple(self.tasks[a.index].value if isinstance(a, _Ref) else a
                             for a in task.args)
                if self.batch == 1:
                    self._send(worker, [(index, task.name, args)])
                else:
                    outgoing[worker].append((index, task.name, args))
                in_flight[worker] += 1
                task.worker = worker
            for worker, batch in enumerate(outgoing):
                if batch:
                    self._send(worker, batch)
            try:
                done = pickle.loads(self.results.recv())
            except zmq.Again as exc:
                raise TimeoutError("a dispatcher worker did not answer") from exc
            for index, value, cpu_s in done:
                task = self.tasks[index]
                in_flight[task.worker] -= 1
                stage_cpu_s += cpu_s
                task.value, task.args = value, ()
                remaining -= 1
                for dependent in task.dependents:
                    self.tasks[dependent].waiting -= 1
                    if not self.tasks[dependent].waiting:
                        ready.append(dependent)
        fps = videos * frames / (time.perf_counter() - start)
        values = [[self.tasks[ref.index].value for ref in video] for video in refs]
        return fps, stage_cpu_s / (videos * frames), values

    def _send(self, worker: int, tasks: list) -> None:
        try:
            self.sockets[worker].send(pickle.dumps(tasks, protocol=5))
        except zmq.Again as exc:
            raise TimeoutError(f"dispatcher worker {worker} did not answer") from exc

    def close(self) -> None:
        for sock in self.sockets:
            try:
                sock.send(STOP, zmq.NOBLOCK)
            except zmq.Again:
                pass  # that worker is gone or never came: killed below
        _kill(self.procs)
        self.context.destroy(linger=0)
        shutil.rmtree(self.directory, ignore_errors=True)


class _Ref:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def dispatcher_fps(workers: int, sizes: bodies.Sizes, rounds: int = 5,
                   timeout_s: float = 120.0, batch: int = 1) -> tuple[float, float]:
    """Median frames/s over `rounds` runs of the pipeline through the minimal dispatcher
    (`batch` > 1: the batched one), and the median of the stages' CPU seconds per frame in its
    workers."""
    dispatcher = _Dispatcher(workers, timeout_s, batch)
    try:
        dispatcher.run(2, 3)  # starts the workers and OpenCV in them
        runs = [dispatcher.run(sizes.videos, sizes.frames) for _ in range(rounds)]
        if runs[-1][2] != _serial_values(sizes.videos, sizes.frames):
            raise AssertionError("the dispatcher's results differ from the serial run's")
        return (statistics.median(fps for fps, _, _ in runs),
                statistics.median(cpu_s for _, cpu_s, _ in runs))
    finally:
        dispatcher.close()


def measure(cpus: int, sizes: bodies.Sizes) -> dict[str, float]:
    """The floors, keyed as `compare` reads them."""
    side_by_side = side_by_side_fps(cpus, sizes)
    dispatcher, stage_cpu_s = dispatcher_fps(cpus, sizes)
    batched, _ = dispatcher_fps(cpus, sizes, batch=BATCH)
    return {"video_side_by_side_fps": side_by_side,
            "video_dispatcher_fps": dispatcher,
            "video_batched_dispatcher_fps": batched,
            "video_worker_stages_fps": cpus / stage_cpu_s}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


if __name__ == "__main__":
    if sys.argv[1:2] == ["--peer"]:
        kind, *rest = sys.argv[2:]
        if kind == "serial":
            _serial_peer(*(int(x) for x in rest))
        else:
            _worker_peer(*rest)
        sys.exit(0)
    parser = argparse.ArgumentParser(description="the mini video pipeline's floors")
    parser.add_argument("--cpus", type=_positive, default=2,
                        help="processes side by side, and the dispatcher's workers")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = bodies.Sizes(quick=args.quick)
    print(f"{'serial (one core)':28} {bodies.serial_fps(sizes):12,.0f}")
    for key, value in measure(args.cpus, sizes).items():
        print(f"{key:28} {value:12,.0f}")
