"""The per-video pipeline on the engine: tasks, actors and the per-video owner loop (paper §2.6).

Per frame i of a video, the video's owner task (`process_video`, `num_cpus=0`) waits until
the frame's release time `start + phase + i/fps` (the real-time input; videos are cameras
that are not in step, so the driver spreads their phases over one frame interval) and
submits:

1. `decoder.decode(i)` on the video's `Decoder` actor (seeks only when not reading
   sequentially; grayscale; `max_restarts=-1`, `max_task_retries=-1`, so a killed decoder
   is restarted and the call re-run: decode(i) is deterministic given i);
2. `flow(prev_frame, frame, features, i)`, 2 returns: transform and the corners tracked into
   the frame (`stabilize.Tracks`);
3. `cumsum(prev_trajectory, transform, checkpoint_key)`: the trajectory; with checkpoints
   on, the cumsum of frame j with (j + r) % K == 0 also writes it to the head's KV;
4. once frame i + r is released, `smooth(transform[i], trajectory[i], *window)` over the
   2r+1 trajectory futures around i (r = fps, clamped at both ends of the video);
5. `sink.send(video, i, smoothed, release_ts)` on a `Sink` actor shared by a few videos,
   which records the latency, drops duplicate frames and, with checkpoints on, writes the
   last delivered frame f (f % K == 0) to the KV.

Task shapes: flow asks for the video's share of the CPUs (runner.py), so every owner keeps
its own worker lease frame after frame; cumsum and smooth take microseconds and ask for no CPU
(a lease for them never waits behind another video's). Giving them the flow's shape instead
(one worker per video) stalled the main job: a queue headed by a flow task (not pipelined)
asked for more leases than the owner could use, and 60 videos delivered 160 of 240 frames/s.

The driver owns the owner tasks (a normal task: when its process dies the engine re-runs it);
each owner owns its frames, transforms, trajectories and Decoder, which fate-share with it.
A re-run owner resumes from the checkpoint: it decodes from f - r (the frame whose trajectory
was checkpointed) to refill the smoothing window and sends frames > f; without a checkpoint
it replays from frame 0 and the Sink drops what it already has. (With `--output`, a re-run
owner rewrites its video file from the frame it resumes at: complete only without
checkpoints.)

Every owner and decoder writes {"pid", "node_id"} under `<prefix>/<video>/owner|decoder` in
the KV, so failure injection can find its process. Owner-side failures (an unreadable frame)
end the owner task with `VideoError` naming the file; other videos go on.
"""

from __future__ import annotations

import collections
import json
import os
import time
from dataclasses import dataclass, field

from ownrun import engine

from . import stabilize


class VideoError(Exception):
    """A video could not be processed (unreadable file or frame); the message names the file."""


@dataclass(frozen=True)
class VideoJob:
    """One video to stabilize."""

    video: str  # short name shown in reports, unique in the run
    path: str
    fps: float
    frames: int  # frames to process (a prefix of the file)
    truth_path: str | None = None  # synthetic ground truth, if any
    phase_s: float = 0.0  # this video's first frame comes this long after the run's start

    @property
    def radius(self) -> int:
        return max(1, round(self.fps))


@dataclass(frozen=True)
class RunSettings:
    """What every owner task of a run shares."""

    start_ts: float  # wall-clock time of frame 0's release
    kv_prefix: str  # `video/<run id>`
    checkpoint_interval: int = 0  # K; 0 = no checkpoints
    output_dir: str | None = None  # write stabilized mp4s here
    decoder_options: dict = field(default_factory=dict)  # placement (multi-node runs)
    flow_options: dict = field(default_factory=dict)  # flow: e.g. the video's CPU share
    light_options: dict = field(default_factory=lambda: {"num_cpus": 0})  # cumsum and smooth
    check_every: float = 1.0  # seconds of video between checks of delivered frames


def owner_key(prefix: str, video: str) -> str:
    return f"{prefix}/{video}/owner"


def decoder_key(prefix: str, video: str) -> str:
    return f"{prefix}/{video}/decoder"


def sink_checkpoint_key(prefix: str, video: str) -> str:
    return f"{prefix}/{video}/sink"


def trajectory_key(prefix: str, video: str, index: int) -> str:
    return f"{prefix}/{video}/trajectory/{index}"


def _announce(key: str) -> None:
    """Writes this process's pid and node to the KV (for failure injection)."""
    node = engine.get_runtime_context().node_id
    engine.kv.put(key, json.dumps({"pid": os.getpid(), "node_id": node, "ts": time.time()}).encode())


# ---- actors ----------------------------------------------------------------------------
class Decoder:
    """Reads one video file frame by frame; decode(i) returns frame i in grayscale (decoded
    straight to luma when the file allows: stabilize.open_gray_capture)."""

    def __init__(self, path: str, announce_key: str | None = None):
        stabilize.cv2_module()
        self.path = path
        self.capture = None
        self.to_gray = stabilize.to_gray  # frame as read -> grayscale (stabilize.open_gray_capture)
        self.next_index = 0
        if announce_key:
            _announce(announce_key)

    def decode(self, index: int):
        cv2 = stabilize.cv2_module()

        if self.capture is None:
            self.capture, self.to_gray = stabilize.open_gray_capture(self.path)
            if not self.capture.isOpened():
                raise VideoError(f"{self.path}: cannot open video")
        if index != self.next_index:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = self.capture.read()
        if not ok or frame is None:
            self.next_index = -1  # position unknown: seek next time
            raise VideoError(f"{self.path}: cannot read frame {index}")
        self.next_index = index + 1
        return self.to_gray(frame)

    def pid(self) -> int:
        return os.getpid()


class Sink:
    """Receives the smoothed frames of several videos: records latency, drops duplicates.

    One record per delivered frame: (video, index, release_ts, delivered_ts, smoothed dx, dy,
    da, correction dx, dy, da). With checkpoints on, writes the last delivered frame f with
    f % K == 0 to the KV. Calls run one at a time (an actor), so no lock is needed."""

    def __init__(self, kv_prefix: str, checkpoint_interval: int = 0):
        self.kv_prefix = kv_prefix
        self.checkpoint_interval = checkpoint_interval
        self.delivered: dict[str, set[int]] = collections.defaultdict(set)
        self.duplicates: collections.Counter = collections.Counter()
        self.last_latency: dict[str, float] = {}
        self.rows: list[tuple] = []

    def send(self, video: str, index: int, smoothed, release_ts: float) -> bool:
        now = time.time()
        seen = self.delivered[video]
        if index in seen:
            self.duplicates[video] += 1
            return False
        seen.add(index)
        (sx, sy, sa), (cx, cy, ca) = smoothed
        self.rows.append((video, index, release_ts, now, sx, sy, sa, cx, cy, ca))
        self.last_latency[video] = now - release_ts
        k = self.checkpoint_interval
        if k and index % k == 0:
            engine.kv.put(sink_checkpoint_key(self.kv_prefix, video), str(index).encode())
        return True

    def progress(self) -> dict[str, tuple[int, float | None, int]]:
        """video -> (frames delivered, latest latency in s, duplicates dropped)."""
        return {v: (len(s), self.last_latency.get(v), self.duplicates[v]) for v, s in self.delivered.items()}

    def records(self, start: int = 0) -> list[tuple]:
        return self.rows[start:]


class Writer:
    """Writes one stabilized video (`--output`): frame i warped by its correction."""

    def __init__(self, path: str, fps: float):
        self.path = path
        self.fps = fps
        self.writer = None

    def write(self, index: int, frame, smoothed) -> None:
        cv2 = stabilize.cv2_module()

        stabilized = stabilize.warp(frame, smoothed[1])
        if self.writer is None:
            h, w = stabilized.shape[:2]
            self.writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h), True)
            if not self.writer.isOpened():
                raise VideoError(f"{self.path}: cannot open for writing")
        self.writer.write(cv2.cvtColor(stabilized, cv2.COLOR_GRAY2BGR))

    def close(self) -> str:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        return self.path


RemoteDecoder = engine.remote(max_restarts=-1, max_task_retries=-1)(Decoder)
RemoteSink = engine.remote(Sink)
RemoteWriter = engine.remote(Writer)


# ---- tasks -------------------------------------------------------------------------------
@engine.remote(num_returns=2)
def flow(prev, frame, features, index):
    return stabilize.estimate_flow(prev, frame, features, index)


@engine.remote
def cumsum(prev_trajectory, transform, checkpoint_key=None):
    trajectory = stabilize.accumulate(prev_trajectory, transform)
    if checkpoint_key:
        engine.kv.put(checkpoint_key, json.dumps(trajectory).encode())
    return trajectory


@engine.remote
def smooth(transform, trajectory_mid, *window):
    return stabilize.smooth(transform, trajectory_mid, window)


@engine.remote
def warm_up() -> int:
    """Run once per owner and task shape before frame 0: leases and starts the owner's
    workers (and OpenCV in them) before the clock does."""
    stabilize.cv2_module()
    return os.getpid()


# ---- the owner ----------------------------------------------------------------------------
@dataclass
class ResumePoint:
    first: int = 0  # first frame to decode
    trajectory: tuple | None = None  # trajectory of `first` (from the checkpoint)
    deliver_from: int = 0  # first frame to send to the Sink

    @property
    def resumed(self) -> bool:
        return self.trajectory is not None


def resume_point(prefix: str, job: VideoJob, checkpoint_interval: int) -> ResumePoint:
    """Where a (re-)run owner starts: after the Sink's checkpoint f, decoding from f - r."""
    if not checkpoint_interval:
        return ResumePoint()
    raw = engine.kv.get(sink_checkpoint_key(prefix, job.video))
    if raw is None:
        return ResumePoint()
    delivered = int(raw)
    first = delivered - job.radius
    stored = engine.kv.get(trajectory_key(prefix, job.video, first)) if first >= 0 else None
    if stored is None:
        return ResumePoint(deliver_from=delivered + 1)
    return ResumePoint(first, tuple(json.loads(stored)), delivered + 1)


class _Owner:
    """State of one owner task's loop: the refs of the frames still needed."""

    def __init__(self, job: VideoJob, sink, settings: RunSettings, decoder, writer):
        self.flow = flow.options(**settings.flow_options)
        self.cumsum = cumsum.options(**settings.light_options)
        self.smooth = smooth.options(**settings.light_options)
        self.warm_ups = [warm_up.options(**settings.flow_options), warm_up.options(**settings.light_options)]
        self.job = job
        self.sink = sink
        self.settings = settings
        self.decoder = decoder
        self.writer = writer
        self.trajectories: dict[int, object] = {}
        self.transforms: dict[int, object] = {}
        self.frames: dict[int, object] = {}  # kept only for the Writer
        self.pending: collections.deque = collections.deque()  # (index, Sink.send ref)
        self.sent = 0

    def release_ts(self, index: int) -> float:
        return self.settings.start_ts + self.job.phase_s + index / self.job.fps

    def submit_smooth(self, index: int, first: int, last: int) -> None:
        window = [self.trajectories[k] for k in stabilize.window_indices(index, self.job.radius, first, last)]
        smoothed = self.smooth.remote(self.transforms.pop(index), self.trajectories[index], *window)
        self.pending.append((index, self.sink.send.remote(self.job.video, index, smoothed,
                                                         self.release_ts(index))))
        if self.writer is not None:
            self.pending.append((index, self.writer.write.remote(index, self.frames.pop(index), smoothed)))
        self.trajectories.pop(index - self.job.radius, None)
        self.sent += 1

    def check(self, block: bool = False) -> None:
        """Pops the finished sends (in order, up to the first unfinished one); raises the first
        failure as VideoError. One `wait` and one `get` for all of them, not one of each per
        send (2 engine calls per check instead of ~9: a sixth of an owner's time under yappi,
        within run-to-run noise of its CPU without it)."""
        if not self.pending:
            return
        refs = [ref for _, ref in self.pending]
        if block:
            done = len(refs)
        else:
            ready, _ = engine.wait(refs, num_returns=len(refs), timeout=0)
            ready = set(ready)
            done = 0
            while done < len(refs) and refs[done] in ready:
                done += 1
            if not done:
                return
        try:
            engine.get(refs[:done])
        except engine.TaskError:
            for index, ref in list(self.pending)[:done]:  # which frame failed, for the message
                try:
                    engine.get(ref)
                except engine.TaskError as exc:
                    raise VideoError(f"{self.job.path}: frame {index}: {_last_line(exc)}") from None
            raise
        for _ in range(done):
            self.pending.popleft()


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _sleep_until(ts: float) -> None:
    delay = ts - time.time()
    if delay > 0:
        time.sleep(delay)


@engine.remote(num_cpus=0)
def process_video(job: VideoJob, sink, settings: RunSettings) -> dict:
    """The per-video owner: releases frames in real time and submits their tasks."""
    prefix = settings.kv_prefix
    _announce(owner_key(prefix, job.video))
    started = time.time()
    point = resume_point(prefix, job, settings.checkpoint_interval)
    decoder = RemoteDecoder.options(**settings.decoder_options).remote(
        job.path, decoder_key(prefix, job.video))
    writer = None
    if settings.output_dir:
        path = os.path.join(settings.output_dir, f"{job.video}.mp4")
        writer = RemoteWriter.remote(path, job.fps)
    owner = _Owner(job, sink, settings, decoder, writer)
    engine.get([decoder.pid.remote(), *[w.remote() for w in owner.warm_ups]])
    ready = time.time()
    r, n, first = job.radius, job.frames, point.first
    key = settings.checkpoint_interval
    check_every = max(1, round(settings.check_every * job.fps))
    prev_frame = features = None
    prev_trajectory = point.trajectory
    for i in range(first, n):
        _sleep_until(owner.release_ts(i))
        frame = decoder.decode.remote(i)
        if point.resumed and i == first:
            owner.trajectories[i] = point.trajectory
        else:
            transform, features = owner.flow.remote(prev_frame, frame, features, i)
            ckpt = trajectory_key(prefix, job.video, i) if key and (i + r) % key == 0 else None
            prev_trajectory = owner.trajectories[i] = owner.cumsum.remote(prev_trajectory, transform, ckpt)
            owner.transforms[i] = transform
        if writer is not None:
            owner.frames[i] = frame
        prev_frame = frame
        j = i - r
        if j >= point.deliver_from:
            owner.submit_smooth(j, first, n - 1)
        else:
            owner.transforms.pop(j, None)
            owner.frames.pop(j, None)
            owner.trajectories.pop(j - r, None)
        if i % check_every == 0:
            owner.check()
    for j in range(max(point.deliver_from, n - r), n):
        owner.submit_smooth(j, first, n - 1)
    owner.check(block=True)
    if writer is not None:
        engine.get(writer.close.remote())
    engine.kill(decoder)
    return {"video": job.video, "first": first, "deliver_from": point.deliver_from, "sent": owner.sent,
            "resumed": point.resumed, "pid": os.getpid(), "started": started, "ready": ready,
            "finished": time.time()}
