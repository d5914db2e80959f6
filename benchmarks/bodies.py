"""The benchmark bodies `compare` runs through each system, and the functions they remote.

Owns: what each row of the comparison measures (`ROWS`), written once against the small
interface of `systems` so ownrun, Ray and Dask run the same code; and the mini video
pipeline (5 tasks per 320x240 frame: decode, flow, cumsum, smooth, warp, on the stabilization
math of `ownrun.apps.video.stabilize`) with its serial rate on one core.
Module-level functions and classes only: every system's workers import them by name from
`ownrun.benchmarks.bodies`, which imports neither the engine nor Ray.
Each body returns {row key: value in the row's unit} for one round, after its own warm-up.
How it fails: bodies raise (a wrong result is an AssertionError); every get has a timeout.
"""
from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

MiB = 2**20
PACE_S = 0.008  # one frame of a 125 fps video: how often a paced owner submits (`paced_tasks`)


@dataclass(frozen=True)
class RowSpec:
    key: str
    label: str  # as in issue 8's table
    unit: str
    higher_is_better: bool
    latency: bool  # measured again under --background-load
    floor: str | None  # the floors' key, or a derived floor (see compare.floor_of)


ROWS = [
    RowSpec("get_1mib", "`get` 1 MiB from the local store", "µs", False, True, None),
    RowSpec("get_100mib", "`get` 100 MiB from the local store", "µs", False, True, None),
    RowSpec("get_1mib_again", "`get` 1 MiB again (same ref, second get)", "µs", False, False,
            None),
    RowSpec("get_100mib_again", "`get` 100 MiB again (same ref, second get)", "µs", False,
            False, None),
    RowSpec("put_1mib", "`put` 1 MiB", "GB/s", True, False, "memcpy_warm_1mib_gbps"),
    RowSpec("put_100mib", "`put` 100 MiB", "GB/s", True, False, "memcpy_warm_100mib_gbps"),
    RowSpec("sync_task", "sync task round trip", "µs", False, True, "reqrep_us"),
    RowSpec("sync_actor", "sync actor calls", "calls/s", True, True, "reqrep_per_s"),
    RowSpec("async_tasks", "async no-op tasks", "tasks/s", True, False, "pushpull_per_s"),
    RowSpec("async_actor", "async actor calls", "calls/s", True, False, "pushpull_per_s"),
    RowSpec("burst_task_cpu", "driver CPU per task, chains of 3 no-op tasks back to back", "µs",
            False, False, None),
    RowSpec("paced_task_cpu", f"driver CPU per task, a chain of 3 every {PACE_S * 1e3:g} ms",
            "µs", False, False, "python_paced_us"),
    RowSpec("video_batch", "mini video pipeline, batch", "frames/s", True, False,
            "video_limit_fps"),
]
BY_KEY = {spec.key: spec for spec in ROWS}


@dataclass(frozen=True)
class Sizes:
    """Counts of one round; `quick` is for smoke tests."""

    quick: bool = False
    timeout_s: float = 300.0
    budget_s: float = 20.0  # a sequential loop stops early after this long (slow systems)

    def n(self, full: int) -> int:
        return max(2, full // 20) if self.quick else full

    @property
    def big(self) -> int:
        return 4 * MiB if self.quick else 100 * MiB

    @property
    def videos(self) -> int:
        return 2 if self.quick else 4

    @property
    def frames(self) -> int:
        return 6 if self.quick else 60


# --- remote functions and actors -------------------------------------------------------

def noop() -> None:
    return None


def link(previous: Any = None) -> None:
    """A no-op that takes the previous link's result (chains of dependent tasks)."""
    return None


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def inc(self) -> int:
        self.calls += 1
        return self.calls


# --- the mini video pipeline -------------------------------------------------------------
WIDTH, HEIGHT, RADIUS = 320, 240, 5  # frame size; smoothing window 2 * RADIUS + 1


@functools.cache
def _scene(seed: int) -> np.ndarray:
    """A textured gray scene larger than a frame, the same in every process."""
    from ownrun.apps.video.stabilize import cv2_module

    cv2 = cv2_module()
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (HEIGHT + 80, WIDTH + 80), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (7, 7), 2)


def decode(video: int, index: int) -> np.ndarray:
    """Frame `index` of shaky video `video` (stands in for decoding: one warp of the scene)."""
    from ownrun.apps.video.stabilize import correction_matrix, cv2_module

    cv2 = cv2_module()
    rng = np.random.default_rng(video * 100_003 + index)
    dx, dy = 40 + 3 * np.sin(index / 9) + rng.normal(0, 2, 2)
    matrix = correction_matrix((-dx, -dy, float(rng.normal(0, 0.01))))
    return cv2.warpAffine(_scene(video % 2), matrix, (WIDTH, HEIGHT))


def flow(prev: np.ndarray | None, frame: np.ndarray, prev_flow: tuple | None,
         index: int) -> tuple:
    from ownrun.apps.video.stabilize import estimate_flow

    features = prev_flow[1] if prev_flow is not None else None
    return estimate_flow(prev, frame, features, index)


def cumsum(prev_trajectory: tuple | None, flow_result: tuple) -> tuple:
    from ownrun.apps.video.stabilize import accumulate

    return accumulate(prev_trajectory, flow_result[0])


def smooth(flow_result: tuple, trajectory_mid: tuple, *window: tuple) -> tuple:
    from ownrun.apps.video.stabilize import smooth as smooth_one

    return smooth_one(flow_result[0], trajectory_mid, window)


def warp(frame: np.ndarray, smoothed: tuple) -> float:
    """The stabilized frame, reduced to its mean (the sink's share is not measured)."""
    from ownrun.apps.video.stabilize import warp as warp_one

    return float(warp_one(frame, smoothed[1]).mean())


STAGES = (decode, flow, cumsum, smooth, warp)


def pipeline(videos: int, frames: int, run: Callable[[Callable], Callable],
             ) -> list[list[Any]]:
    """Builds the pipeline of `videos` x `frames` frames; `run(fn)` returns a callable that
    starts `fn` (a task submitter, or `fn` itself for the serial run). Returns each video's
    warp results (refs or values)."""
    submit = {fn.__name__: run(fn) for fn in STAGES}
    outputs = []
    for video in range(videos):
        frames_, flows, trajectories = [], [], []
        prev_frame = prev_flow = prev_traj = None
        for i in range(frames):
            frame = submit["decode"](video, i)
            prev_flow = submit["flow"](prev_frame, frame, prev_flow, i)
            prev_traj = submit["cumsum"](prev_traj, prev_flow)
            frames_.append(frame)
            flows.append(prev_flow)
            trajectories.append(prev_traj)
            prev_frame = frame
        warped = []
        for i in range(frames):
            window = [trajectories[k] for k in
                      [min(max(j, 0), frames - 1) for j in range(i - RADIUS, i + RADIUS + 1)]]
            smoothed = submit["smooth"](flows[i], trajectories[i], *window)
            warped.append(submit["warp"](frames_[i], smoothed))
        outputs.append(warped)
    return outputs


def serial_fps(sizes: Sizes) -> float:
    """Frames per second of the pipeline's functions called in this process (one core)."""
    pipeline(1, 3, lambda fn: fn)  # warm-up: OpenCV, the scenes
    start = time.perf_counter()
    pipeline(sizes.videos, sizes.frames, lambda fn: fn)
    return sizes.videos * sizes.frames / (time.perf_counter() - start)


# --- bodies ------------------------------------------------------------------------------

def _per_call_us(run: Callable[[], Any], n: int, budget_s: float) -> float:
    """Mean µs per call of up to `n` sequential calls, stopping early (after at least 10)
    once `budget_s` has passed, so a slow system does not stretch a round to minutes."""
    start = time.perf_counter()
    done = 0
    while done < n:
        run()
        done += 1
        if done >= 10 and time.perf_counter() - start > budget_s:
            break
    return (time.perf_counter() - start) / done * 1e6


def put_get(system, sizes: Sizes, keys: set[str]) -> dict[str, float]:
    """put bandwidth and get latency: each iteration puts the array, gets it (the caller's
    own put, in the local store), then gets it again (a second get of the same ref).
    Medians over the iterations."""
    out: dict[str, float] = {}
    for nbytes, suffix, reps in ((MiB, "1mib", 20), (sizes.big, "100mib", 5)):
        mine = {f"put_{suffix}", f"get_{suffix}", f"get_{suffix}_again"} & keys
        if not mine:
            continue
        array = np.arange(nbytes // 8, dtype=np.float64)
        times: dict[str, list[float]] = {"put": [], "get": [], "again": []}
        reads = bool(mine - {f"put_{suffix}"})
        for i in range(reps + 1):  # the first is a warm-up
            start = time.perf_counter()
            ref = system.put(array)
            put_done = time.perf_counter()
            value = system.get(ref, sizes.timeout_s) if reads else None
            got = time.perf_counter()
            again = system.get(ref, sizes.timeout_s) if reads else None
            got_again = time.perf_counter()
            if value is not None and (value.shape != array.shape or value[-1] != array[-1]):
                raise AssertionError("get() returned a different array than was put()")
            if i:
                times["put"].append(put_done - start)
                times["get"].append(got - put_done)
                times["again"].append(got_again - got)
            del value, again, ref
        out[f"put_{suffix}"] = nbytes / statistics.median(times["put"]) / 1e9
        out[f"get_{suffix}"] = statistics.median(times["get"]) * 1e6
        out[f"get_{suffix}_again"] = statistics.median(times["again"]) * 1e6
    return {k: v for k, v in out.items() if k in keys}


def sync_task(system, sizes: Sizes, keys: set[str]) -> dict[str, float]:
    f, n = system.task(noop), sizes.n(1000)
    system.get(f(), sizes.timeout_s)
    return {"sync_task": _per_call_us(lambda: system.get(f(), sizes.timeout_s), n,
                                      sizes.budget_s)}


def async_tasks(system, sizes: Sizes, keys: set[str]) -> dict[str, float]:
    f, n = system.task(noop), sizes.n(10_000)
    system.get([f() for _ in range(10)], sizes.timeout_s)
    start = time.perf_counter()
    system.get([f() for _ in range(n)], sizes.timeout_s)
    return {"async_tasks": n / (time.perf_counter() - start)}


def actor_calls(system, sizes: Sizes, keys: set[str]) -> dict[str, float]:
    actor, out = system.actor(Counter), {}
    try:
        system.get(system.call(actor, "inc"), sizes.timeout_s)
        if "sync_actor" in keys:
            n = sizes.n(2000)
            us = _per_call_us(lambda: system.get(system.call(actor, "inc"), sizes.timeout_s), n,
                              sizes.budget_s)
            out["sync_actor"] = 1e6 / us
        if "async_actor" in keys:
            n = sizes.n(10_000)
            start = time.perf_counter()
            values = system.get([system.call(actor, "inc") for _ in range(n)], sizes.timeout_s)
            out["async_actor"] = n / (time.perf_counter() - start)
            if system.ordered_actor_calls and values != list(range(values[0], values[0] + n)):
                raise AssertionError("actor calls from one caller ran out of order")
    finally:
        system.kill(actor)
    return out


def paced_tasks(system, sizes: Sizes, keys: set[str]) -> dict[str, float]:
    """The driver's CPU (all its threads) per task for chains of 3 dependent no-op tasks,
    submitted back to back and one chain every `PACE_S`, as a video owner submits a frame's
    tasks after sleeping until the frame is due; the driver waits for all of them at the end."""
    f, chains = system.task(link), sizes.n(200)
    system.get([f(f(f())) for _ in range(20)], sizes.timeout_s)

    def cpu_per_task(pause_s: float) -> float:
        cpu, start, refs = time.process_time(), time.perf_counter(), []
        for i in range(chains):
            if pause_s:
                delay = start + i * pause_s - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            refs.append(f(f(f())))
        system.get(refs, sizes.timeout_s)
        return (time.process_time() - cpu) / (3 * chains) * 1e6

    pauses = {"burst_task_cpu": 0.0, "paced_task_cpu": PACE_S}
    return {key: cpu_per_task(pause_s) for key, pause_s in pauses.items() if key in keys}


def video_batch(system, sizes: Sizes, keys: set[str]) -> dict[str, float]:
    def run(fn: Callable) -> Callable:
        return system.task(fn)

    warm = pipeline(2, 3, run)  # starts the workers and OpenCV in them
    system.get([ref for video in warm for ref in video], sizes.timeout_s)
    start = time.perf_counter()
    refs = pipeline(sizes.videos, sizes.frames, run)
    system.get([ref for video in refs for ref in video], sizes.timeout_s)
    return {"video_batch": sizes.videos * sizes.frames / (time.perf_counter() - start)}


BODIES: list[tuple[Callable[..., dict[str, float]], set[str]]] = [
    (put_get, {"put_1mib", "get_1mib", "put_100mib", "get_100mib", "get_1mib_again",
               "get_100mib_again"}),
    (sync_task, {"sync_task"}),
    (actor_calls, {"sync_actor", "async_actor"}),
    (async_tasks, {"async_tasks"}),
    (paced_tasks, {"burst_task_cpu", "paced_task_cpu"}),
    (video_batch, {"video_batch"}),
]
