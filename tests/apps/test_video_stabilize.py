"""The video app's pure parts: smoothing with padding, cumsum, latency statistics, and real
stabilization of a short synthetic clip with OpenCV, without the engine."""
import math

import numpy as np
import pytest
from ownrun.apps.video import report, stabilize, synthetic

cv2 = pytest.importorskip("cv2")


def test_window_indices_repeat_the_first_and_last_trajectory_at_the_ends():
    assert stabilize.window_indices(0, 2, 0, 9) == [0, 0, 0, 1, 2]
    assert stabilize.window_indices(5, 2, 0, 9) == [3, 4, 5, 6, 7]
    assert stabilize.window_indices(9, 2, 0, 9) == [7, 8, 9, 9, 9]
    assert len(stabilize.window_indices(4, 30, 0, 9)) == 61


def test_accumulate_is_the_running_sum_of_transforms():
    transforms = [(1.0, 2.0, 0.1), (0.5, -1.0, 0.0), (-2.0, 0.0, -0.3)]
    trajectory = None
    sums = []
    for t in transforms:
        trajectory = stabilize.accumulate(trajectory, t)
        sums.append(trajectory)
    assert np.allclose(sums, np.cumsum(transforms, axis=0))


def test_smooth_moves_each_frame_onto_the_window_mean():
    window = [(0.0, 0.0, 0.0), (2.0, 4.0, 0.2), (4.0, 2.0, 0.1)]
    smoothed, correction = stabilize.smooth((1.0, 1.0, 0.05), window[1], window)
    mean = np.mean(window, axis=0)
    assert np.allclose(correction, mean - np.array(window[1]))
    assert np.allclose(smoothed, np.array(correction) + [1.0, 1.0, 0.05])


def test_smoothing_a_straight_path_changes_nothing_away_from_the_ends():
    transforms = [(1.0, -0.5, 0.01)] * 20
    out = stabilize.stabilize_offline(transforms, radius=3)
    for smoothed, correction in out[3:-3]:
        assert np.allclose(correction, 0.0, atol=1e-12)
        assert np.allclose(smoothed, transforms[0])
    # Padding repeats the first trajectory: the first frame is pulled forward, the last back.
    assert out[0][1][0] > 0 and out[-1][1][0] < 0


def test_smoothing_removes_white_jitter_from_a_trajectory():
    rng = np.random.default_rng(3)
    jitter = rng.normal(0, 2.0, (400, 3))
    positions = jitter  # intended path: standing still
    transforms = np.diff(positions, axis=0, prepend=np.zeros((1, 3)))
    out = stabilize.stabilize_offline([tuple(t) for t in transforms], radius=10)
    stabilized = positions + np.array([c for _, c in out])
    inner = slice(10, -10)
    assert stabilized[inner].std(axis=0).max() < 0.35 * positions[inner].std(axis=0).min()


def test_latency_stats_are_percentiles_and_the_maximum():
    stats = report.LatencyStats.of(np.arange(1, 101) / 1000.0)
    assert stats.count == 100
    assert stats.p50 == pytest.approx(0.0505)
    assert stats.p90 == pytest.approx(0.0901)
    assert stats.p99 == pytest.approx(0.09901)
    assert stats.max == pytest.approx(0.1)
    assert math.isnan(report.LatencyStats.of([]).p50)


def _records(videos, frames, fps, start, delay):
    rows = []
    for v in videos:
        for i in range(frames):
            release = start + i / fps
            rows.append((v, i, release, release + 1.0 + delay(v, i), 0, 0, 0, 0, 0, 0))
    return rows


def test_summary_leaves_out_the_warm_up_and_the_tail_and_reports_throughput():
    fps, frames, start = 10.0, 100, 1000.0
    rows = _records(["a", "b"], frames, fps, start, lambda v, i: 5.0 if i < 30 else 0.02 + 0.001 * (i % 10))
    table = report.FrameTable.from_records(rows, {"a": 1.0, "b": 1.0})
    videos = [{"video": v, "frames": frames, "fps": fps} for v in ("a", "b")]
    summary = report.summarize(table, start_ts=start, videos=videos, target_fps=20)
    stats = summary["latency_above_floor_s"]
    # Frames 0-29 (the first 3 s) and the last r=10 frames are left out.
    assert stats["count"] == 2 * (frames - 30 - 10)
    assert stats["max"] == pytest.approx(0.029)
    assert summary["frames_delivered"] == 200 and summary["kept_up"]
    assert summary["frames_per_s"] == pytest.approx(200 / (9.9 + 1.029), rel=1e-3)
    assert summary["tasks_per_s"] == pytest.approx(5 * summary["frames_per_s"])


def test_a_run_whose_lag_grows_did_not_keep_up():
    fps, frames, start = 10.0, 200, 0.0
    rows = _records(["a"], frames, fps, start, lambda v, i: 0.02 * i)  # 2 s behind at the end
    table = report.FrameTable.from_records(rows, {"a": 1.0})
    summary = report.summarize(table, start_ts=start, videos=[{"video": "a", "frames": frames, "fps": fps}],
                               target_fps=10)
    assert not summary["kept_up"]


def test_a_run_missing_frames_did_not_keep_up():
    rows = _records(["a"], 100, 10.0, 0.0, lambda v, i: 0.01)[:-5]
    table = report.FrameTable.from_records(rows, {"a": 1.0})
    summary = report.summarize(table, start_ts=0.0, videos=[{"video": "a", "frames": 100, "fps": 10.0}],
                               target_fps=10)
    assert not summary["kept_up"] and summary["frames_delivered"] == 95


def test_failure_spike_is_the_worst_latency_of_the_hit_video_near_the_failure():
    rows = _records(["a", "b"], 100, 10.0, 0.0, lambda v, i: 3.0 if (v == "a" and i == 50) else 0.01)
    table = report.FrameTable.from_records(rows, {"a": 1.0, "b": 1.0})
    spike = report.failure_spike(table, {"kind": "owner", "ts": 5.0, "videos": ["a"]})
    assert spike["spike_max_above_floor_s"] == pytest.approx(3.0)
    assert spike["spike_frame"] == 50 and spike["frames_over_1s"] == 1


def test_corners_are_re_detected_when_half_of_the_detected_are_lost_and_every_200_frames():
    points = np.zeros((40, 1, 2), np.float32)
    assert not stabilize.Tracks(points, 50).worn_out(7)
    assert not stabilize.Tracks(points[:25], 50).worn_out(7)
    assert stabilize.Tracks(points[:24], 50).worn_out(7)
    assert stabilize.Tracks(points, 40).worn_out(stabilize.REDETECT_EVERY)
    assert stabilize.Tracks(points[:2], 2).worn_out(7)  # too few to fit a transform


def test_stabilizing_a_synthetic_clip_leaves_well_below_the_input_jitter(tmp_path, monkeypatch):
    spec = synthetic.SyntheticSpec(width=160, height=120, fps=15, frames=120, seed=5)
    clip = synthetic.ensure_video(spec, tmp_path)
    assert clip.path.stat().st_size > 0
    detections = []
    detect = stabilize.detect_features
    monkeypatch.setattr(stabilize, "detect_features", lambda gray: detections.append(1) or detect(gray))
    capture = cv2.VideoCapture(str(clip.path))
    prev, features, transforms = None, None, []
    for index in range(spec.frames):
        ok, frame = capture.read()
        assert ok, f"frame {index} unreadable"
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        transform, features = stabilize.estimate_flow(prev, gray, features, index)
        transforms.append(transform)
        prev = gray
    capture.release()
    corrections = np.array([c for _, c in stabilize.stabilize_offline(transforms, radius=15)])
    jitter = report.residual_jitter(clip.truth(), corrections)
    assert jitter["input_px"] > 3.0  # sigma 3 px per axis
    assert jitter["residual_px"] < 0.5 * jitter["input_px"]
    assert jitter["residual_deg"] < 0.5 * jitter["input_deg"]
    # the scene has few corners (fewer than MAX_CORNERS): tracked ones are followed from frame
    # to frame, not re-detected on every frame
    assert 1 <= len(detections) < spec.frames // 4


def test_synthetic_clips_are_cached_by_their_parameters(tmp_path):
    spec = synthetic.SyntheticSpec(width=64, height=48, fps=5, frames=6, seed=1)
    first = synthetic.ensure_video(spec, tmp_path)
    mtime = first.path.stat().st_mtime_ns
    again = synthetic.ensure_video(spec, tmp_path)
    assert again.path == first.path and again.path.stat().st_mtime_ns == mtime
    other = synthetic.ensure_video(synthetic.SyntheticSpec(width=64, height=48, fps=5, frames=6, seed=2), tmp_path)
    assert other.path != first.path
    assert first.truth().shape == (6, 6)
    assert not list(tmp_path.glob("*.tmp-*"))
    assert int(cv2.VideoCapture(str(first.path)).get(cv2.CAP_PROP_FRAME_COUNT)) == 6


def _fake_run(run_dir, fps, frames, delay):
    start = 100.0
    rows = _records(["a"], frames, fps, start, delay)
    table = report.FrameTable.from_records(rows, {"a": 1.0})
    videos = [{"video": "a", "frames": frames, "fps": fps}]
    summary = report.summarize(table, start_ts=start, videos=videos, target_fps=fps,
                               config={"start_ts": start, "fps": fps, "metadata": "ownership"})
    report.write_run(run_dir, summary, table)
    return summary


def test_plot_draws_the_latency_cdfs_of_several_runs_into_one_png(tmp_path):
    pytest.importorskip("matplotlib")
    from ownrun.cli.main import app
    from typer.testing import CliRunner

    _fake_run(tmp_path / "fast", 10.0, 100, lambda v, i: 0.01 * (i % 5))
    _fake_run(tmp_path / "slow", 10.0, 100, lambda v, i: 0.2 * (i % 5))
    out = tmp_path / "cdf.png"
    result = CliRunner().invoke(app, ["video", "plot", str(tmp_path / "fast"), str(tmp_path / "slow"),
                                      "--out", str(out)], prog_name="ownrun")
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    values, summary = report.load_latencies(tmp_path / "slow")
    assert len(values) == summary["latency_above_floor_s"]["count"] == 60


def test_plot_of_a_directory_that_is_not_a_run_fails_in_one_line(tmp_path):
    from ownrun.cli.main import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["video", "plot", str(tmp_path)], prog_name="ownrun")
    assert result.exit_code == 5
    assert result.output.strip().splitlines() == [f"error: file not found: {tmp_path}"]


def test_open_capture_decodes_on_one_thread_the_same_frames(tmp_path):
    spec = synthetic.SyntheticSpec(width=64, height=48, fps=5, frames=6, seed=3)
    clip = synthetic.ensure_video(spec, tmp_path)
    single, default = stabilize.open_capture(str(clip.path)), cv2.VideoCapture(str(clip.path))
    assert single.isOpened()
    assert single.get(cv2.CAP_PROP_N_THREADS) == 1
    for index in range(spec.frames):
        (ok1, a), (ok2, b) = single.read(), default.read()
        assert ok1 and ok2, f"frame {index} unreadable"
        assert np.array_equal(a, b)


def test_open_capture_of_a_missing_file_is_not_opened(tmp_path):
    assert not stabilize.open_capture(str(tmp_path / "missing.mp4")).isOpened()
    capture, convert = stabilize.open_gray_capture(str(tmp_path / "missing.mp4"))
    assert not capture.isOpened() and convert is stabilize.to_gray


def test_open_gray_capture_decodes_to_luma_that_matches_the_bgr_decoding_in_gray(tmp_path):
    spec = synthetic.SyntheticSpec(width=64, height=48, fps=5, frames=8, seed=4)
    clip = synthetic.ensure_video(spec, tmp_path)
    capture, convert = stabilize.open_gray_capture(str(clip.path))
    bgr = stabilize.open_capture(str(clip.path))
    assert capture.isOpened()
    assert convert is not stabilize.to_gray  # this OpenCV hands out the luma plane of an mp4
    for index in range(spec.frames):
        (ok1, luma), (ok2, frame) = capture.read(), bgr.read()
        assert ok1 and ok2, f"frame {index} unreadable"
        assert luma.shape == (48, 64)  # one channel, not three
        gray, expected = convert(luma), stabilize.to_gray(frame)
        assert gray.dtype == np.uint8 and gray.shape == expected.shape
        assert int(cv2.absdiff(gray, expected).max()) <= stabilize.GRAY_TOLERANCE
    assert convert(frame).shape == (48, 64)  # a BGR frame after all is converted, not passed on


def test_full_range_stretches_limited_luma_and_saturates():
    luma = np.array([[0, 16, 126, 235, 255]], dtype=np.uint8)
    assert stabilize.full_range(luma).tolist() == [[0, 0, 128, 255, 255]]
