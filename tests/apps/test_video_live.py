"""What `ownrun video` shows while it runs (apps/video/live.py, cli/console.py Heartbeat) and
why its summary shows `-` for latency; one tiny run with stdout to a pipe."""
import io
import os
import re
import subprocess
import sys

import pytest
from ownrun.apps.video import report
from ownrun.apps.video.live import LiveView, plain_line
from ownrun.apps.video.pipeline import VideoJob
from ownrun.cli.console import Heartbeat, step
from rich.console import Console

from tests.conftest import wait_for

NEGATIVE = re.compile(r"(?<![\w.])-\s*\d")  # "-3", "- 2", not "v-1" nor a lone "-"


def _jobs(n: int, fps: float = 4.0, frames: int = 400) -> list[VideoJob]:
    width = len(str(n - 1))
    return [VideoJob(f"v{k:0{width}d}", "x.mp4", fps, frames, phase_s=k / (n * fps)) for k in range(n)]


def _render(view: LiveView, width: int = 80, height: int = 24) -> list[str]:
    console = Console(record=True, width=width, height=height, file=io.StringIO())
    console.print(view)
    return console.export_text().splitlines()


def _progress(jobs, delivered: int, latency_of) -> dict:
    return {j.video: (delivered, latency_of(k), 0) for k, j in enumerate(jobs)}


@pytest.mark.parametrize("n", [60, 150])
def test_the_live_view_fits_80_by_24_and_shows_no_negative_time(n):
    jobs = _jobs(n)
    now = [100.0]
    view = LiveView(jobs, start_ts=103.0, clock=lambda: now[0])
    # starting: frame 0 is 3 s away, and a Sink reports latencies below the 1 s floor
    view.update([_progress(jobs, 0, lambda k: 0.5)])
    starting = _render(view)
    now[0] = 150.0  # running: some frames arrived a little before the floor, some late
    view.update([_progress(jobs, 180, lambda k: 0.9 + 0.05 * (k % 7))])
    running = _render(view)
    for lines in (starting, running):
        assert lines and max(len(line) for line in lines) <= 80, "\n".join(lines)
        assert len(lines) <= 23, "\n".join(lines)
        assert not NEGATIVE.search("\n".join(lines)), "\n".join(lines)
    assert "starting: frame 0 in 3.0 s" in starting[0]
    shown = {name for line in running for name in re.findall(r"\bv\d+\b", line)}
    if n == 60:  # every video has its cell
        assert shown == {j.video for j in jobs}
    else:  # bands over all videos, then the slowest that fit
        text = "\n".join(running)
        assert "latency: <50 ms" in text and f"of {n} videos" in text
        assert "200ms" in text  # the slowest (k % 7 == 6): 1.2 s, 0.2 s above the 1 s floor


def test_long_names_and_failed_videos_stay_inside_the_width():
    jobs = [VideoJob(f"{k:02d}-a-very-long-camera-name-{k}", "x.mp4", 30.0, 900) for k in range(12)]
    view = LiveView(jobs, start_ts=0.0, clock=lambda: 10.0)
    view.update([_progress(jobs, 300, lambda k: 1.1)])
    view.failed.add(jobs[3].video)
    lines = _render(view, width=80)
    assert max(len(line) for line in lines) <= 80
    assert "failed" in "\n".join(lines)


def test_plain_line_and_heartbeat_pacing():
    jobs = _jobs(2, frames=40)
    now = [0.0]
    view = LiveView(jobs, start_ts=5.0, clock=lambda: 10.0)
    view.update([_progress(jobs, 20, lambda k: 1.02)])
    line = plain_line(view)
    assert line.startswith("progress: 2 videos, video time 5.0 s") and "frames 40/80 (50%)" in line
    console = Console(record=True, width=200, file=io.StringIO())
    beat = Heartbeat(console, period=10.0, clock=lambda: now[0])
    printed = []
    for t in (0.0, 3.0, 9.9, 10.0, 15.0, 20.5):
        now[0] = t
        if beat.beat(lambda: "tick"):
            printed.append(t)
    assert printed == [0.0, 10.0, 20.5]
    assert Heartbeat(None).beat(lambda: "x") is False


def test_a_step_without_a_loop_prints_a_line_per_period_until_it_ends():
    out = io.StringIO()
    console = Console(file=out, width=200)
    with step(console, "starting a cluster", period=0.01):
        wait_for(lambda: out.getvalue().count("starting a cluster (") >= 2, 10.0)
    lines = out.getvalue().splitlines()
    assert lines[0] == "starting a cluster ..." and re.fullmatch(r"starting a cluster \(\d+ s\)", lines[1])
    count = len(lines)
    with step(console, None):  # nothing to say: nothing printed
        pass
    assert len(out.getvalue().splitlines()) == count


def _summary(frames: int, fps: float = 4.0, count: int = 0, delivered: int = 24) -> dict:
    return {"latency_above_floor_s": {"count": count}, "frames_delivered": delivered,
            "per_video": [{"video": "v0", "fps": fps, "frames": frames, "error": None}]}


def test_the_summary_says_why_latency_is_a_dash():
    reason = report.no_latency_reason(_summary(12))
    assert "warm-up" in reason and "--frames 17" in reason
    assert report.no_latency_reason(_summary(12, delivered=0)) == "no frame was delivered"
    assert report.no_latency_reason(_summary(400, count=100)) is None


@pytest.mark.timeout(180)
def test_a_run_piped_to_a_file_prints_progress_lines_and_the_reason_for_dashes(tmp_path):
    """stdout is a pipe: no live view, plain `progress:` lines instead; --frames 12 at 4 fps
    leaves no frame for the statistics, and the summary says so."""
    env = {**os.environ, "OWNRUN_VIDEO_CACHE": str(tmp_path / "cache"), "COLUMNS": "120"}
    result = subprocess.run(
        [sys.executable, "-m", "ownrun.cli.main", "video", "--videos", "2", "--frames", "12", "--fps", "4",
         "--size", "64x48", "--num-cpus", "2", "--runs", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=170, env=env)  # stdout: a pipe
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    progress = [line for line in out.splitlines() if line.startswith("progress: 2 videos")]
    assert progress, out
    assert any("frames 24/24 (100%)" in line for line in progress), out
    assert "latency -: no frame counted" in " ".join(out.split()), out
    assert "--frames 17" in out
    assert "\x1b[" not in out  # no cursor movement or colour codes in a file
