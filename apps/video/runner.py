"""The driver of `ownrun video`: prepares the videos, runs the owners, shows and saves results.

Owns `VideoOptions` (the command's options, config.VideoConfig, plus knobs for programs), choosing the inputs (cached synthetic clips,
or `--input` files probed up front, before the cluster starts: an unreadable one is reported
in one line naming it and left out, and when none is readable the run stops with
`InputError` (one line, exit 5 in the CLI); OpenCV's and FFmpeg's own messages are
silenced, here and in the workers, via stabilize.cv2_module), starting the engine
(failures.start_engine), creating the Sinks (one per `videos_per_sink` videos) and one owner
task per video, the progress shown meanwhile (live.py: a live view on a terminal, a plain
line at least every 10 s otherwise), the failure injector, and writing the run directory
(report.py). The driver owns the owner tasks: when an owner's process dies
the engine re-runs it (`owner_retries`).

Not thread-safe: one run at a time per process (the engine is per process). Failures: a
video whose owner fails ends with a one-line error naming its file while the others go on;
errors of the engine itself propagate (the CLI prints them in one line).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ownrun import engine
from ownrun.cli.console import PLAIN_PERIOD_S, Heartbeat, is_live, step
from pydantic import Field
from rich.markup import escape

from ..run_dir import new_run_dir, write_timeline
from . import config, failures, live, pipeline, report, stabilize, synthetic

# Defaults measured on a 2-core machine: 60 videos x 4 fps of 320x240 (240 frames/s, 1,200
# tasks/s) keep up with real time at ~0.9 cores (p99 ~50 ms above the floor), and 400 frames
# (100 s of video) make a run of about two minutes. 320x240 grayscale (75 KiB) travels inline.
DEFAULT_SIZE = (320, 240)
DEFAULT_FPS = 4.0
DEFAULT_FRAMES = 400
DISTINCT_CLIPS = 8  # synthetic clips generated; videos reuse them round-robin
STUCK_AFTER = 60.0  # s past 1.5x the video length after which a running owner counts as stuck


class VideoOptions(config.VideoConfig):
    """The command's options (config.VideoConfig, defined once) plus the knobs only programs set:
    tests, benchmarks and `ownrun run` (apps/jobs/)."""

    lead_s: float | None = None  # time from submitting the owners to frame 0; None: by video count
    videos_per_sink: int = Field(9, ge=1)
    owner_retries: int = Field(3, ge=0)
    cache_dir: str | None = None
    seed: int = 0
    distinct_clips: int = Field(DISTINCT_CLIPS, ge=1)
    stagger: bool = True  # spread the videos' first frames over one frame interval
    run_dir: str | None = None  # write the run here; None: a new timestamped folder under runs_dir
    object_store_memory: int | None = Field(None, gt=0)  # bytes per node of an embedded cluster
    node_death_timeout: float = Field(failures.NODE_DEATH_TIMEOUT, gt=0)  # of an embedded cluster


class InputError(pipeline.VideoError):
    """An `--input` file is missing, unreadable, corrupt or too short (exit 5 in the CLI)."""


@dataclass
class RunResult:
    run_dir: Path
    summary: dict
    errors: list[str]


# ---- inputs --------------------------------------------------------------------------------
def probe(path: str) -> tuple[float, int, int, int]:
    """(fps, frame count, width, height) of a video file; InputError if it cannot be read."""
    cv2 = stabilize.cv2_module()  # quiet: the error below is the one line the user sees

    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a video file")
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise InputError(f"{path}: cannot open video (corrupt or not a video file)")
        ok, frame = capture.read()
        if not ok or frame is None:
            raise InputError(f"{path}: no decodable frame (corrupt or empty video)")
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        return fps, count, frame.shape[1], frame.shape[0]
    finally:
        capture.release()


def prepare_jobs(opts: VideoOptions, console=None) -> tuple[list[pipeline.VideoJob], list[str]]:
    """The videos to run, and one-line errors for the inputs left out."""
    if opts.input:
        return _input_jobs(opts)
    fps = opts.fps or DEFAULT_FPS
    frames = opts.frames or DEFAULT_FRAMES
    specs = [synthetic.SyntheticSpec(width=opts.size[0], height=opts.size[1], fps=fps, frames=frames,
                                     seed=opts.seed + k % max(1, opts.distinct_clips)) for k in range(opts.videos)]
    cache = Path(opts.cache_dir) if opts.cache_dir else None
    missing = synthetic.missing(specs, cache)
    with step(console, f"generating {missing} synthetic clip(s) (cached for later runs)" if missing else None):
        clips = synthetic.ensure_videos(specs, cache)
    width = len(str(opts.videos - 1))
    jobs = [pipeline.VideoJob(f"v{k:0{width}d}", str(c.path), fps, frames, str(c.truth_path))
            for k, c in enumerate(clips)]
    return jobs, []


def _input_jobs(opts: VideoOptions) -> tuple[list[pipeline.VideoJob], list[str]]:
    jobs, errors = [], []
    for k, path in enumerate(opts.input):
        try:
            fps, count, _, _ = probe(path)
        except InputError as exc:
            errors.append(str(exc))
            continue
        fps = opts.fps or fps or DEFAULT_FPS
        frames = min(count, opts.frames) if opts.frames and count else (opts.frames or count)
        if frames < 2:
            errors.append(f"{path}: too few frames ({count})")
            continue
        stem = Path(path).stem[:24]
        jobs.append(pipeline.VideoJob(f"{k:02d}-{stem}", os.path.abspath(path), fps, frames))
    return jobs, errors


def _default_lead(videos: int) -> float:
    """Time for owners and decoders to start before frame 0 (measured: ~25 ms per video here)."""
    return 2.0 + 0.05 * videos


# ---- the run ---------------------------------------------------------------------------------
class _Memory:
    """Peak memory of the driver and its descendants (the whole embedded cluster), if psutil
    is installed: the sum of PSS (shared pages split among the processes that map them; RSS
    would count the pages every forked worker shares with the zygote once per worker)."""

    PERIOD_S = 10.0

    def __init__(self):
        try:
            import psutil
        except ImportError:
            self.proc = None
        else:
            self.proc = psutil.Process()
        self.peak = 0.0
        self.last_sample = -math.inf

    def sample(self) -> None:
        now = time.monotonic()
        if self.proc is None or now - self.last_sample < self.PERIOD_S:
            return
        self.last_sample = now
        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            with contextlib.suppress(Exception):
                info = p.memory_full_info()
                total += getattr(info, "pss", info.rss)
        self.peak = max(self.peak, total / 2**20)


def run(opts: VideoOptions, console=None) -> RunResult:
    """Runs the videos of `opts` to completion and writes the run directory."""
    plan = opts.failure_plan  # VideoConfig checked it (a node failure needs nodes >= 2)
    stabilize.quiet_opencv()  # before the cluster starts: its processes inherit the setting
    jobs, errors = prepare_jobs(opts, console)
    if not jobs:
        more = f" (and {len(errors) - 1} more unreadable input(s))" if len(errors) > 1 else ""
        raise InputError(errors[0] + more) if errors else pipeline.VideoError("no video to process")
    for line in errors:
        _say(console, f"[bold red]error:[/] {escape(line)}")
    run_dir = Path(opts.run_dir) if opts.run_dir else new_run_dir(opts.runs_dir)
    if opts.output:
        Path(opts.output).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    where = (f"connecting to the cluster at {opts.address}" if opts.address
             else f"starting an embedded cluster of {opts.nodes} node(s)")
    with step(console, where):
        placement = failures.start_engine(address=opts.address, nodes=opts.nodes, num_cpus=opts.num_cpus,
                                          metadata=opts.metadata, by_value=opts.by_value,
                                          object_store_memory=opts.object_store_memory,
                                          node_death_timeout=opts.node_death_timeout)
    try:
        return _run_on_engine(opts, jobs, errors, plan, placement, run_dir, t0, console)
    finally:
        engine.shutdown()


def _run_on_engine(opts, jobs, errors, plan, placement, run_dir, t0, console) -> RunResult:
    prefix = f"video/{uuid.uuid4().hex[:12]}"
    lead = opts.lead_s if opts.lead_s is not None else _default_lead(len(jobs))
    start_ts = time.time() + lead
    sink_count = math.ceil(len(jobs) / opts.videos_per_sink)
    sinks = [pipeline.RemoteSink.options(**placement.sink).remote(prefix, opts.checkpoint_interval)
             for _ in range(sink_count)]
    share = failures.cpu_share(placement.total_cpus, len(jobs))
    settings = pipeline.RunSettings(start_ts, prefix, opts.checkpoint_interval,
                                    os.path.abspath(opts.output) if opts.output else None,
                                    placement.decoder, flow_options={"num_cpus": share})
    owner_task = pipeline.process_video.options(max_retries=opts.owner_retries)
    if opts.stagger:
        jobs = _spread_phases(jobs)
    owners = {owner_task.remote(job, sinks[k // opts.videos_per_sink], settings): job
              for k, job in enumerate(jobs)}
    injector = None
    if plan is not None:
        injector = failures.Injector(plan, start_ts, prefix, jobs[0].video, placement.reserve)
        injector.start()
    memory = _Memory()
    results, owner_errors = _wait_for_owners(owners, sinks, jobs, start_ts, memory, opts, console)
    if injector is not None:
        injector.cancel()
        injector.join(timeout=5)
    records = []
    for rows in engine.get([s.records.remote() for s in sinks], timeout=60):
        records.extend(rows)
    progress = {}
    for part in engine.get([s.progress.remote() for s in sinks], timeout=60):
        progress.update(part)
    _cleanup_kv(prefix)
    errors = errors + owner_errors
    for line in owner_errors:
        _say(console, f"[bold red]error:[/] {line}")
    summary = _summarize(opts, jobs, results, owner_errors, records, progress, start_ts, t0, lead,
                         memory, injector)
    table = report.FrameTable.from_records(records, {j.video: j.radius / j.fps for j in jobs})
    if opts.timeline:  # before the engine stops: the trace is gathered from its processes
        summary["timeline"] = str(write_timeline(run_dir, opts.timeline))
    report.write_run(run_dir, summary, table)
    return RunResult(run_dir, summary, errors)


def _wait_for_owners(owners: dict, sinks: list, jobs, start_ts, memory, opts, console):
    """Waits for every owner task, refreshing the live view; returns (results, error lines).

    Gives up on owners still running `STUCK_AFTER` after their video should have ended (plus
    half its length): they are reported as errors instead of hanging the run."""
    pending = list(owners)
    results, error_lines = {}, []
    view = live.LiveView(jobs, start_ts)
    shown = _show_live(console, opts)
    # a turn of the loop below takes up to ~2.5 s (wait 0.5 s, Sinks 2 s): beat early enough
    heartbeat = Heartbeat(None if shown else console, period=PLAIN_PERIOD_S - 3.0)
    length = max(j.phase_s + j.frames / j.fps for j in jobs)
    deadline = start_ts + 1.5 * length + STUCK_AFTER
    with _live(console, view, shown) as screen:
        while pending:
            if time.time() > deadline:
                for ref in pending:
                    job = owners[ref]
                    error_lines.append(f"{job.video} ({job.path}): its owner did not finish within "
                                       f"{deadline - start_ts:.0f} s of the start; left out")
                break
            ready, pending = engine.wait(pending, num_returns=len(pending), timeout=0.5)
            for ref in ready:
                job = owners[ref]
                try:
                    results[job.video] = engine.get(ref)
                except engine.EngineError as exc:
                    error_lines.append(f"{job.video} ({job.path}): {_last_line(exc)}")
                    view.failed.add(job.video)
            memory.sample()
            if screen is not None or heartbeat.due():  # the Sinks are asked only when shown
                with contextlib.suppress(engine.GetTimeoutError):
                    view.update(engine.get([s.progress.remote() for s in sinks], timeout=2))
                if screen is not None:
                    screen.update(view)
                heartbeat.beat(lambda: live.plain_line(view))
    if heartbeat.last is not None:  # the last line says where the run ended
        with contextlib.suppress(engine.GetTimeoutError):
            view.update(engine.get([s.progress.remote() for s in sinks], timeout=2))
        heartbeat.beat(lambda: live.plain_line(view), force=True)
    return results, error_lines


def _show_live(console, opts) -> bool:
    """A live view on a terminal (unless --no-live); plain progress lines otherwise."""
    return opts.live and is_live(console)


@contextlib.contextmanager
def _live(console, view, shown: bool):
    if not shown:
        yield None
        return
    from rich.live import Live

    with Live(view, console=console, refresh_per_second=2, transient=True) as screen:
        yield screen


def _spread_phases(jobs: list[pipeline.VideoJob]) -> list[pipeline.VideoJob]:
    """Staggers the videos' first frames evenly over one frame interval: independent cameras
    are not in step, and releasing every video's frame at the same instant would queue them
    all behind each other on a small machine."""
    n = len(jobs)
    return [dataclasses.replace(job, phase_s=k / (n * job.fps)) for k, job in enumerate(jobs)]


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text.removeprefix("ownrun.apps.video.pipeline.").removeprefix("VideoError: ")


def _cleanup_kv(prefix: str) -> None:
    with contextlib.suppress(engine.EngineError):
        for key in engine.kv.list(prefix + "/"):
            engine.kv.delete(key)


def _summarize(opts, jobs, results, owner_errors, records, progress, start_ts, t0, lead, memory, injector):
    failed = {line.split(" ", 1)[0] for line in owner_errors}
    videos = []
    for job in jobs:
        result = results.get(job.video, {})
        videos.append({"video": job.video, "path": job.path, "fps": job.fps, "frames": job.frames,
                       "duplicates_dropped": progress.get(job.video, (0, None, 0))[2],
                       "resumed_from": result.get("first") if result.get("resumed") else None,
                       "ready_before_start_s": round(start_ts - result["ready"], 3) if result.get("ready") else None,
                       "error": next((e for e in owner_errors if e.startswith(job.video + " ")), None)
                       if job.video in failed else None})
    floors = {j.video: j.radius / j.fps for j in jobs}
    table = report.FrameTable.from_records(records, floors)
    jitter = _jitter(jobs, table)
    duplicates = sum(v["duplicates_dropped"] for v in videos)
    run_config = {**opts.model_dump(mode="json", exclude={"live"}),
              "fps": jobs[0].fps if len({j.fps for j in jobs}) == 1 else "mixed",
              "frames": jobs[0].frames if len({j.frames for j in jobs}) == 1 else "mixed",
              "floor_s": max(floors.values()), "start_ts": start_ts, "lead_s": lead,
              "startup_s": _startup(results, start_ts, t0, _rerun(injector)),
              "peak_pss_mib": round(memory.peak, 1) or None, "cpus": os.cpu_count()}
    failures_ = [injector.event] if injector is not None else []
    return report.summarize(table, start_ts=start_ts, videos=videos,
                            target_fps=sum(j.fps for j in jobs), extra_tasks=duplicates * report.TASKS_PER_FRAME,
                            failures=failures_, jitter=jitter, config=run_config)


def _startup(results: dict, start_ts: float, t0: float, rerun: set) -> float:
    """Seconds from the command's start until the last owner was ready, with its Decoder and
    workers started (videos whose owner was re-run are left out)."""
    ready = [r["ready"] for video, r in results.items() if r.get("ready") and video not in rerun]
    return (max(ready) - t0) if ready else (start_ts - t0)


def _rerun(injector) -> set:
    """Videos whose owner the injected failure may have re-run."""
    if injector is None or injector.plan.kind == "decoder":
        return set()
    return set(injector.event.get("videos", []))


def _jitter(jobs, table: report.FrameTable) -> dict | None:
    import numpy as np

    parts, weights = [], []
    for job in jobs:
        if not job.truth_path:
            continue
        sel = table.of_video(job.video)
        if sel.sum() != job.frames:
            continue
        truth = np.load(job.truth_path)[: job.frames]
        order = np.argsort(table.frame[sel])
        parts.append(report.residual_jitter(truth, table.correction[sel][order]))
        weights.append(job.frames)
    return report.pooled_jitter(parts, weights)


def _say(console, text: str) -> None:
    if console is not None:
        console.print(text, soft_wrap=True)
