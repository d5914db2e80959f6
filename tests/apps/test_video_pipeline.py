"""The video pipeline on a real embedded cluster: every frame reaches a Sink exactly once,
with an unreadable input among the videos and when an owner process is killed mid-run."""
import csv
import json

import pytest
from ownrun.apps.video import report, runner, synthetic

pytest.importorskip("cv2")

FPS = 8.0
FRAMES = 40


def _options(tmp_path, **overrides) -> runner.VideoOptions:
    values = {"videos": 2, "fps": FPS, "frames": FRAMES, "size": (160, 120), "runs_dir": str(tmp_path / "runs"),
              "cache_dir": str(tmp_path / "cache"), "live": False, "num_cpus": 2, "lead_s": 2.0}
    values.update(overrides)
    return runner.VideoOptions(**values)


def _delivered(run_dir) -> dict[str, list[int]]:
    frames: dict[str, list[int]] = {}
    with open(run_dir / "frames.csv", newline="") as f:
        for row in csv.DictReader(f):
            frames.setdefault(row["video"], []).append(int(row["frame"]))
    return frames


def _assert_each_frame_once(run_dir, videos: list[str], frames: int) -> None:
    delivered = _delivered(run_dir)
    assert sorted(delivered) == sorted(videos)
    for video in videos:
        assert sorted(delivered[video]) == list(range(frames)), f"{video}: frames missing or repeated"


def test_two_videos_deliver_every_frame_once_and_write_the_run_directory(tmp_path):
    result = runner.run(_options(tmp_path))
    assert result.errors == []
    run_dir = result.run_dir
    assert (run_dir / "summary.json").exists() and (run_dir / "frames.csv").exists()
    _assert_each_frame_once(run_dir, ["v0", "v1"], FRAMES)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["frames_delivered"] == summary["frames_expected"] == 2 * FRAMES
    assert summary["latency_above_floor_s"]["count"] > 0
    assert summary["residual_jitter"]["residual_px"] < summary["residual_jitter"]["input_px"]
    values, _ = report.load_latencies(run_dir)
    assert len(values) == summary["latency_above_floor_s"]["count"]


def test_timeline_writes_the_runs_chrome_trace_into_its_run_directory(tmp_path):
    result = runner.run(_options(tmp_path, videos=1, frames=12, timeline="trace.json"))
    assert result.errors == [] and result.summary["timeline"] == str(result.run_dir / "trace.json")
    events = json.loads((result.run_dir / "trace.json").read_text())["traceEvents"]
    names = {e["name"] for e in events if e.get("cat") == "task"}
    assert "process_video" in names and len(names) >= 2, names


def test_a_corrupt_input_gets_one_line_naming_it_and_the_other_video_completes(tmp_path):
    from ownrun.cli.main import app
    from typer.testing import CliRunner

    good = synthetic.ensure_video(synthetic.SyntheticSpec(width=160, height=120, fps=FPS, frames=30, seed=4),
                                  tmp_path / "cache")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    result = CliRunner().invoke(app, ["video", "--input", str(bad), str(good.path), "--runs",
                                      str(tmp_path / "runs"), "--no-live", "--num-cpus", "2"],
                                prog_name="ownrun")
    lines = [line for line in result.output.splitlines() if "broken.mp4" in line]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert result.exit_code == 1
    (run_dir,) = (tmp_path / "runs").iterdir()
    delivered = _delivered(run_dir)
    assert list(delivered) == ["01-" + good.path.stem[:24]]
    assert sorted(next(iter(delivered.values()))) == list(range(30))


def test_killed_owner_resumes_from_its_checkpoint_and_every_frame_arrives_once(tmp_path):
    result = runner.run(_options(tmp_path, fail="owner@3.5s", checkpoint_interval=6))
    summary = result.summary
    (failure,) = summary["failures"]
    assert "error" not in failure, failure
    assert failure["pid"] > 0
    _assert_each_frame_once(result.run_dir, ["v0", "v1"], FRAMES)
    v0 = next(v for v in summary["per_video"] if v["video"] == "v0")
    assert v0["resumed_from"] is not None, "the re-run owner did not find its checkpoint"
    assert result.errors == []
