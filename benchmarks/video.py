"""The highest total frame rate (videos x fps) this machine sustains with the video pipeline.

    python benchmarks/video.py [--quick] [--videos 4,60] [--modes ownership,centralized]

For each metadata mode and each video count, runs short `ownrun video` jobs on an embedded
cluster: a ladder of per-video frame rates (doubling from 25 fps for a few videos, 1 fps for
many, until a run fails; a failing rung is run once more, as the machine may be shared), then
a bisection between the last good and the first bad rate. Each run starts once the CPUs were
80% idle for a second (at most 30 s of waiting): the last, overloaded rung's processes take
seconds to drain and exit; each run records the share of CPU time the hypervisor gave to
something else meanwhile (steal: on a shared host it makes rungs fail that pass on a quiet
one). A run is sustained when every
frame arrived, the run kept up with real time, and p99 latency above the smoothing floor is
at most --p99-ms (150 ms). Each run lasts --seconds of video (the first 3 s are left out of
the statistics). Prints a table and writes benchmarks/results/video.json (with the run's
metadata: date, load average, git revision, machine; `ownrun.benchmarks.meta`).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from ownrun.apps.video import runner
from ownrun.benchmarks import RESULTS_DIR, meta
from ownrun.benchmarks.load import cpu_times, wait_until_quiet
from rich.console import Console
from rich.table import Table


def trial(mode: str, videos: int, fps: float, args, console: Console) -> dict:
    frames = max(int(math.ceil(fps * args.seconds)), int(fps * 3) + 2 * int(round(fps)) + 4)
    opts = runner.VideoOptions(videos=videos, fps=fps, frames=frames, size=args.size, metadata=mode,
                               runs_dir=args.runs, live=False, distinct_clips=2)
    idle_before = wait_until_quiet()  # an overloaded rung's processes drain before the next starts
    started, cpu_before = time.monotonic(), cpu_times()
    try:
        result = runner.run(opts)
    except Exception as exc:  # a run that breaks is a failed rung, not the end of the benchmark
        console.print(f"  {mode} {videos} x {fps:g} fps: [red]failed[/] ({type(exc).__name__}: {exc})")
        return {"fps": fps, "ok": False, "error": str(exc)}
    total, _, steal = (after - before for after, before in zip(cpu_times(), cpu_before, strict=True))
    steal_share = steal / total if total else 0.0  # the hypervisor ran something else meanwhile
    s = result.summary
    stats = s["latency_above_floor_s"]
    ok = (s["frames_delivered"] == s["frames_expected"] and s["kept_up"]
          and stats["p99"] <= args.p99_ms / 1e3)
    console.print(f"  {mode:11} {videos:3d} x {fps:6.2f} fps = {videos * fps:7.1f} frames/s: "
                  f"p50 {stats['p50'] * 1e3:6.0f} ms  p99 {stats['p99'] * 1e3:6.0f} ms  "
                  f"max {stats['max'] * 1e3:6.0f} ms  {'[green]ok[/]' if ok else '[red]no[/]'}  "
                  f"({time.monotonic() - started:.0f} s, idle {idle_before:.0%} before, steal {steal_share:.0%}, "
                  f"{result.run_dir})")
    return {"fps": fps, "ok": ok, "p50": stats["p50"], "p99": stats["p99"], "max": stats["max"],
            "frames_per_s": s["frames_per_s"], "run_dir": str(result.run_dir), "idle_before": idle_before,
            "steal_share": steal_share}


def checked_trial(mode: str, videos: int, fps: float, args, console: Console, tried: list) -> dict:
    """A trial, run again once if it failed: the machine may be shared with other work, and
    one noisy run should not end the ladder."""
    result = trial(mode, videos, fps, args, console)
    tried.append(result)
    if not result["ok"] and args.retries:
        result = trial(mode, videos, fps, args, console)
        tried.append(result)
    return result


def search(mode: str, videos: int, args, console: Console) -> dict:
    """Doubling ladder, then `args.bisect` bisection steps; returns the best sustained trial."""
    tried: list = []
    fps, good, bad = args.start_fps(videos), None, None
    while fps <= args.max_fps:
        result = checked_trial(mode, videos, fps, args, console, tried)
        if not result["ok"]:
            bad = result
            break
        good = result
        fps *= 2
    for _ in range(args.bisect if good and bad else 0):
        mid = round((good["fps"] + bad["fps"]) / 2, 2)
        if mid in (good["fps"], bad["fps"]):
            break
        result = checked_trial(mode, videos, mid, args, console, tried)
        good, bad = (result, bad) if result["ok"] else (good, result)
    return {"mode": mode, "videos": videos, "best": good, "first_failing": bad, "tried": tried}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", default="4,60", help="comma-separated video counts")
    parser.add_argument("--modes", default="ownership,centralized")
    parser.add_argument("--seconds", type=float, default=15.0, help="video length of each run")
    parser.add_argument("--p99-ms", type=float, default=150.0)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--bisect", type=int, default=2)
    parser.add_argument("--retries", type=int, default=1, help="re-runs of a failing rung (0 or 1)")
    parser.add_argument("--max-fps", type=float, default=400.0)
    parser.add_argument("--quick", action="store_true", help="shorter runs, one bisection step")
    parser.add_argument("--runs", default="bench-results/video-runs")
    parser.add_argument("--json", default=str(RESULTS_DIR / "video.json"))
    args = parser.parse_args(argv)
    args.size = tuple(int(x) for x in args.size.lower().split("x"))
    if args.quick:
        args.seconds, args.bisect = 10.0, 1
    args.start_fps = lambda videos: 25.0 if videos <= 8 else 1.0
    console = Console(highlight=False)
    run = meta.Run("video")
    results = []
    for videos in [int(v) for v in args.videos.split(",")]:
        for mode in args.modes.split(","):
            console.print(f"[bold]{mode}, {videos} videos[/]")
            results.append(search(mode, videos, args, console))
    table = Table(title=f"video pipeline: highest sustained load (p99 above floor <= {args.p99_ms:g} ms)")
    for column in ("mode", "videos", "fps each", "frames/s", "p50", "p99", "max", "fails at"):
        table.add_column(column, justify="right")
    for r in results:
        best, bad = r["best"], r["first_failing"]
        if best is None:
            table.add_row(r["mode"], str(r["videos"]), "-", "none sustained", "", "", "", "")
            continue
        total = best["fps"] * r["videos"]
        table.add_row(r["mode"], str(r["videos"]), f"{best['fps']:g}", f"{total:g}", f"{best['p50'] * 1e3:.0f} ms",
                      f"{best['p99'] * 1e3:.0f} ms", f"{best['max'] * 1e3:.0f} ms",
                      f"{bad['fps']:g}" if bad else f"> {args.max_fps:g}")
    console.print(table)
    config = {"p99_ms": args.p99_ms, "seconds": args.seconds, "size": args.size,
              "quick": args.quick, "videos": args.videos, "modes": args.modes}
    out = meta.write(run.document(config, results, p99_ms=args.p99_ms), Path(args.json))
    console.print(f"measured: {meta.describe(json.loads(out.read_text()))}")
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
