"""What a video run reports: latency statistics, residual jitter, run directory files, tables, plots.

Owns turning the Sinks' per-frame records into the paper's numbers (pure functions), the run
directory (`summary.json` and `frames.csv`), the Rich summary table and the latency-CDF plot
of `ownrun video plot`. Does not run anything on the engine.

Latency of a frame = delivery time at its Sink - its release time; reported above the
smoothing floor r/fps (the window's look-ahead), pooled over all frames of all videos, leaving
out frames released in the first `warmup` seconds (3 s, as the paper) and each video's last
frame. A run kept up with real time when every frame arrived and the median latency above the
floor over the last 10% of the run's frames (by release time) stayed under `KEPT_UP_LAG`.
Thread-safe (pure functions; files are written by the caller's thread).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import plots
from ..run_dir import write_summary

WARMUP_S = 3.0
KEPT_UP_LAG = 0.5  # s above the floor, median over the run's last 10% of frames
TASKS_PER_FRAME = 5  # decode, flow, cumsum, smooth, send
CSV_COLUMNS = ["video", "frame", "release_ts", "delivered_ts", "latency_s", "latency_above_floor_s", "counted",
               "smoothed_dx", "smoothed_dy", "smoothed_da", "correction_dx", "correction_dy", "correction_da"]


@dataclass
class LatencyStats:
    """Latency above the floor, in seconds, over the frames that count."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> LatencyStats:
        if len(values) == 0:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        a = np.asarray(values, dtype=np.float64)
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return cls(len(a), float(p50), float(p90), float(p99), float(a.max()))


@dataclass
class FrameTable:
    """The delivered frames of a run as columns (one row per frame, sorted by video, frame)."""

    video: np.ndarray  # str
    frame: np.ndarray
    release_ts: np.ndarray
    delivered_ts: np.ndarray
    floor: np.ndarray  # r/fps of the frame's video
    smoothed: np.ndarray  # n x 3
    correction: np.ndarray  # n x 3

    @classmethod
    def from_records(cls, records: Iterable[Sequence], floors: dict[str, float]) -> FrameTable:
        rows = sorted(records, key=lambda r: (r[0], r[1]))
        video = np.array([r[0] for r in rows], dtype=object)
        numbers = np.array([r[1:] for r in rows], dtype=np.float64).reshape(len(rows), 9)
        return cls(video, numbers[:, 0].astype(np.int64), numbers[:, 1], numbers[:, 2],
                   np.array([floors.get(v, 0.0) for v in video], dtype=np.float64),
                   numbers[:, 3:6], numbers[:, 6:9])

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def latency(self) -> np.ndarray:
        return self.delivered_ts - self.release_ts

    @property
    def above_floor(self) -> np.ndarray:
        return self.latency - self.floor

    def counted(self, start_ts: float, tails: dict[str, int], warmup: float = WARMUP_S) -> np.ndarray:
        """Mask of the frames the statistics use: past the warm-up, and before each video's
        tail (`tails`: video -> its first frame left out)."""
        tail = np.array([tails.get(v, 2**62) for v in self.video], dtype=np.int64)
        return (self.release_ts - start_ts >= warmup) & (self.frame < tail)

    def of_video(self, video: str) -> np.ndarray:
        return self.video == video


def tails(videos: list[dict]) -> dict[str, int]:
    """video -> first frame of its tail (the last r = round(fps) frames), left out of the stats."""
    return {v["video"]: v["frames"] - max(1, round(v["fps"])) for v in videos}


def kept_up(table: FrameTable, expected_frames: int, counted: np.ndarray) -> bool:
    """Every frame arrived, and the lag did not grow: see the module docstring."""
    if len(table) < expected_frames or not counted.any():
        return False
    lag = table.above_floor[counted]
    last = np.argsort(table.release_ts[counted])[-max(1, len(lag) // 10):]
    return float(np.median(lag[last])) <= KEPT_UP_LAG


def residual_jitter(truth: np.ndarray, corrections: np.ndarray) -> dict[str, float]:
    """Jitter of the camera path before and after stabilization, against the intended path.

    `truth` is frames x 6 (actual x, y, angle_deg, intended x, y, angle_deg, as written by
    synthetic.py); `corrections` is frames x 3 (dx, dy, da in radians) from the pipeline.
    The stabilized displacement of frame i is actual_i + correction_i; jitter is the RMS of
    its difference from the intended path after removing the constant offset (frame 0's
    jitter shifts the whole stabilized path). Translation in px (RMS of the 2-D error),
    rotation in degrees."""
    actual = truth[:, :3].astype(np.float64).copy()
    intended = truth[:, 3:6].astype(np.float64).copy()
    corr = np.asarray(corrections, dtype=np.float64).copy()
    corr[:, 2] = np.degrees(corr[:, 2])
    before = actual - intended
    after = actual + corr - intended
    before -= before.mean(axis=0)
    after -= after.mean(axis=0)

    def px(a):
        return float(np.sqrt((a[:, 0] ** 2 + a[:, 1] ** 2).mean()))

    def deg(a):
        return float(np.sqrt((a[:, 2] ** 2).mean()))

    return {"input_px": px(before), "residual_px": px(after), "input_deg": deg(before), "residual_deg": deg(after)}


def pooled_jitter(parts: list[dict[str, float]], weights: list[int]) -> dict[str, float] | None:
    """Root-mean-square pooling of per-video jitter figures, weighted by frame count."""
    if not parts:
        return None
    w = np.asarray(weights, dtype=np.float64)
    return {k: float(np.sqrt(np.average([p[k] ** 2 for p in parts], weights=w))) for k in parts[0]}


def summarize(table: FrameTable, *, start_ts: float, videos: list[dict], target_fps: float,
              extra_tasks: int = 0, failures: list[dict] | None = None,
              jitter: dict | None = None, config: dict | None = None) -> dict:
    """The run's summary.json: stats, throughput, per-video results and failure spikes.

    `videos`: one dict per video with at least `video`, `frames` (expected), `fps`."""
    expected = sum(v["frames"] for v in videos if not v.get("error"))
    mask = table.counted(start_ts, tails(videos)) if len(table) else np.zeros(0, bool)
    stats = LatencyStats.of(table.above_floor[mask])
    duration = float(table.delivered_ts.max() - start_ts) if len(table) else 0.0
    frames_per_s = len(table) / duration if duration > 0 else 0.0
    tasks = len(table) * TASKS_PER_FRAME + extra_tasks
    per_video = []
    for v in videos:
        sel = table.of_video(v["video"])
        lat = table.above_floor[sel]
        per_video.append({**v, "delivered": int(sel.sum()),
                          "max_above_floor_s": float(lat.max()) if len(lat) else None})
    return {
        "config": config or {},
        "start_ts": start_ts,
        "videos": len(videos),
        "frames_expected": expected,
        "frames_delivered": len(table),
        "latency_above_floor_s": asdict(stats),
        "frames_per_s": frames_per_s,
        "target_frames_per_s": target_fps,
        "tasks_per_s": tasks / duration if duration > 0 else 0.0,
        "duration_s": duration,
        "kept_up": kept_up(table, expected, mask),
        "failures": [failure_spike(table, f) for f in (failures or [])],
        "residual_jitter": jitter,
        "per_video": per_video,
    }


def failure_spike(table: FrameTable, failure: dict) -> dict:
    """Adds to a failure event the worst latency above the floor of the frames it hit:
    frames of the affected videos released within 30 s before or after it."""
    out = dict(failure)
    ts = failure.get("ts")
    if ts is None or not len(table):
        return out
    hit = np.isin(table.video, failure.get("videos") or list(set(table.video)))
    near = hit & (table.release_ts >= ts - 30) & (table.release_ts <= ts + 30)
    if near.any():
        lat = table.above_floor[near]
        worst = int(np.argmax(lat))
        out["spike_max_above_floor_s"] = float(lat[worst])
        out["spike_frame"] = int(table.frame[near][worst])
        out["frames_over_1s"] = int((lat > 1.0).sum())
    return out


# ---- files ---------------------------------------------------------------------------------
def write_run(run_dir: Path, summary: dict, table: FrameTable, counted: np.ndarray | None = None) -> None:
    """summary.json and frames.csv (one row per delivered frame; `counted` says which
    frames the statistics use, by default as `summarize` chose them)."""
    if counted is None:
        counted = counted_mask(table, summary)
    write_summary(run_dir, summary)
    with open(run_dir / "frames.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(CSV_COLUMNS)
        latency, above = table.latency, table.above_floor
        for k in range(len(table)):
            out.writerow([table.video[k], int(table.frame[k]), f"{table.release_ts[k]:.6f}",
                          f"{table.delivered_ts[k]:.6f}", f"{latency[k]:.6f}", f"{above[k]:.6f}",
                          int(counted[k]),
                          *(f"{x:.5f}" for x in table.smoothed[k]), *(f"{x:.6f}" for x in table.correction[k])])


def counted_mask(table: FrameTable, summary: dict) -> np.ndarray:
    if not len(table):
        return np.zeros(0, bool)
    return table.counted(summary["start_ts"], tails(summary.get("per_video", [])))


def load_latencies(run_dir: Path) -> tuple[np.ndarray, dict]:
    """(latencies above the floor that the statistics use, summary) of a run directory."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    with open(run_dir / "frames.csv", newline="") as f:
        values = [float(r["latency_above_floor_s"]) for r in csv.DictReader(f) if r.get("counted", "1") == "1"]
    return np.asarray(values, dtype=np.float64), summary


# ---- presentation --------------------------------------------------------------------------
def run_label(summary: dict, run_dir: Path | None = None) -> str:
    c = summary.get("config", {})
    parts = [f"{summary.get('videos', '?')}x{c.get('fps', '?')} fps", c.get("metadata", "ownership")]
    if c.get("by_value"):
        parts.append("by-value")
    if c.get("checkpoint_interval"):
        parts.append(f"CP{c['checkpoint_interval']}")
    if c.get("fail"):
        parts.append(f"fail {c['fail']}")
    label = "; ".join(parts)
    return f"{label} ({run_dir.name})" if run_dir is not None else label


def _ms(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    return f"{seconds * 1e3:.0f} ms" if abs(seconds) < 10 else f"{seconds:.1f} s"


def summary_table(summary: dict, title: str = "ownrun video"):
    from rich.table import Table

    stats = summary["latency_above_floor_s"]
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    c = summary.get("config", {})
    table.add_row("videos x fps", f"{summary['videos']} x {c.get('fps', '?')} "
                                  f"({summary['target_frames_per_s']:.0f} frames/s offered)")
    table.add_row("frames delivered", f"{summary['frames_delivered']} / {summary['frames_expected']}")
    for key in ("p50", "p90", "p99", "max"):
        table.add_row(f"latency {key} (above {c.get('floor_s', 1):.2g} s floor)", _ms(stats[key]))
    table.add_row("frames/s", f"{summary['frames_per_s']:.0f}")
    table.add_row("tasks/s", f"{summary['tasks_per_s']:.0f}")
    table.add_row("kept up with real time", "[green]yes[/]" if summary["kept_up"] else "[red]no[/]")
    jitter = summary.get("residual_jitter")
    if jitter:
        table.add_row("jitter in -> out (px)", f"{jitter['input_px']:.2f} -> {jitter['residual_px']:.2f}")
        table.add_row("jitter in -> out (deg)", f"{jitter['input_deg']:.3f} -> {jitter['residual_deg']:.3f}")
    for f in summary.get("failures", []):
        what = f"failure {f['kind']}@{f['at_s']:g}s"
        if f.get("error"):
            table.add_row(what, f"[red]{f['error']}[/]")
        else:
            restarted = (f" restarted in {_ms(f['replaced_after_s'])}"
                         if f.get("replaced_after_s") is not None else "")
            table.add_row(what, f"spike {_ms(f.get('spike_max_above_floor_s'))} "
                                f"({f.get('target', '')}{restarted})")
    table.add_row("start-up (cluster + owners)", f"{c.get('startup_s', 0):.1f} s")
    if c.get("peak_pss_mib"):
        table.add_row("peak memory (PSS, all processes)", f"{c['peak_pss_mib'] / 1024:.2f} GiB")
    return table


def plot_cdfs(run_dirs: Sequence[Path], out_png: Path, tail_from: float = 0.9) -> Path:
    """Latency CDFs of several runs in one PNG: the whole CDF and its tail, maxima marked."""
    fig, (full, tail) = plots.two_panels(len(run_dirs))
    for run_dir in run_dirs:
        values, summary = load_latencies(Path(run_dir))
        if not len(values):
            continue
        x = np.sort(values) * 1e3
        y = np.arange(1, len(x) + 1) / len(x)
        label = f"{run_label(summary, Path(run_dir))}: max {_ms(x[-1] / 1e3)}"
        (line,) = full.plot(x, y, label=label)
        keep = y >= tail_from
        tail.plot(x[keep], y[keep], color=line.get_color())
        tail.plot([x[-1]], [1.0], marker="o", color=line.get_color())  # the maximum
    for ax, title in ((full, "latency above the smoothing floor"), (tail, f"tail (CDF >= {tail_from:g})")):
        ax.set_xlabel("ms")
        ax.set_ylabel("CDF")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    full.set_xscale("symlog", linthresh=10)
    tail.set_xscale("log")
    return plots.save(fig, full, out_png)
