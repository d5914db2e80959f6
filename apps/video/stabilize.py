"""The stabilization math of one frame, as pure functions (no engine, no I/O).

Owns what the pipeline's tasks compute, following the OpenCV point-feature stabilization
tutorial that the paper's artifact derives from:

1. `estimate_flow(prev, frame, tracks, index)`: track corners from `prev` to `frame`
   (`calcOpticalFlowPyrLK`), fit a rotation + translation (`estimateAffinePartial2D`) and
   return the transform `(dx, dy, da)` (px, px, radians; rotation about the origin, then
   translation) with the `Tracks` (the points tracked into `frame`), which the next frame's
   call tracks further. Corners are re-detected (`goodFeaturesToTrack`: up to 200 corners,
   quality 0.01, distance 30, block 3) when fewer than half of those the last detection found
   are still tracked, and every 200 frames. (The rule is relative: a 320x240 synthetic scene
   has ~50 corners, so "fewer than 100" re-detected on every frame, which was 60% of the
   flow's time, for the same accuracy against the ground truth.) Frame 0 has no motion.
2. `accumulate(trajectory, transform)`: the trajectory (running sum of transforms), i.e. the
   camera displacement of frame i relative to frame 0.
3. `smooth(transform, trajectory_mid, window)`: with `mean` the average of the 2r+1
   trajectories around frame i (indices clamped to the video: `window_indices`), returns
   `(smoothed, correction)`: `smoothed = mean - trajectory_mid + transform` (the paper's
   smoothed transform) and `correction = mean - trajectory_mid`, the warp that moves frame i
   onto the smoothed path (`warp`).

Values are tuples of Python floats (cheap to pickle); tracked points are float32 arrays
(N x 1 x 2).
Thread-safe (no shared state). Failures: OpenCV errors propagate; a frame where nothing can
be tracked yields a zero transform rather than an error.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Triple = tuple[float, float, float]
ZERO: Triple = (0.0, 0.0, 0.0)

MAX_CORNERS = 200
QUALITY = 0.01
MIN_DISTANCE = 30
BLOCK_SIZE = 3
KEEP_FRACTION = 0.5  # re-detect when fewer than this share of the detected corners remain
REDETECT_EVERY = 200  # and every this many frames


# OpenCV's own log and FFmpeg's (av_log: "moov atom not found" for a corrupt file) are off:
# the pipeline reports an unreadable video in one line naming the file. FFmpeg's level is
# read at the first VideoCapture, OpenCV's at import, so these go into the environment first
# (where the processes of an embedded cluster inherit them). -8 is AV_LOG_QUIET.
QUIET_ENV = {"OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_LOGLEVEL": "-8"}
_quiet = False


def quiet_opencv() -> None:
    """Silences OpenCV's and FFmpeg's messages in this process (and in its children)."""
    global _quiet
    if _quiet:
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    import cv2

    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None and hasattr(logging, "setLogLevel"):
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    _quiet = True


def cv2_module():
    """OpenCV, limited to one thread per process (many pipeline processes share few cores)
    and quiet (`quiet_opencv`)."""
    quiet_opencv()
    import cv2

    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)
    return cv2


def open_capture(path: str):
    """A `cv2.VideoCapture` of `path` decoding on one thread (check `isOpened()`).

    FFmpeg's default frame threading wakes two decoder threads per frame; a pipeline runs a
    decoder per video, and for one 320x240 frame at a time the hand-offs cost more than they
    save (measured: 0.33 -> 0.19–0.24 ms of CPU per frame). Falls back to OpenCV's default
    backend choice when FFmpeg cannot open the file."""
    cv2 = cv2_module()
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not capture.isOpened():
        capture = cv2.VideoCapture(path)
    return capture


# Luma in the limited range of most video (16-235) to the full range that converting to BGR
# and then to gray gives (0-255): full = (limited - 16) * 255 / 219, saturated.
LIMITED_SCALE, LIMITED_OFFSET = 255 / 219, -16 * 255 / 219
GRAY_TOLERANCE = 3  # levels a luma frame may differ from the BGR -> gray conversion of it


def to_gray(frame: np.ndarray) -> np.ndarray:
    """A frame OpenCV decoded to BGR (or already gray), as 8-bit grayscale."""
    if frame.ndim == 2:
        return frame
    cv2 = cv2_module()
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def open_gray_capture(path: str):
    """(capture, convert): a capture of `path` and the function that turns each frame it reads
    into the frame `to_gray` of its BGR decoding gives (within `GRAY_TOLERANCE` levels).

    FFmpeg can hand out a frame's luma plane itself (`CAP_PROP_CONVERT_RGB` off) instead of
    converting it to BGR, which the pipeline then converted back to gray (measured on a 320x240
    clip, means of 4 interleaved runs of 1,400 frames: BGR + cvtColor 0.30 ms of CPU per frame,
    luma + `full_range` 0.27, luma alone 0.23). Whether the luma is in the limited range (16-235:
    stretched, `full_range`) or in the full one is not exposed, so frame 0 is decoded both ways
    and compared; a file whose luma matches neither (another pixel format, another
    backend, an unreadable frame 0) is decoded to BGR as before. Check `isOpened()`."""
    judged = _luma_capture(path)  # (read from frame 0 on: a fresh one is returned, not seeked)
    convert = _luma_converter(judged, path) if judged.isOpened() else None
    judged.release()
    if convert is None:
        return open_capture(path), to_gray
    return _luma_capture(path), convert


def _luma_capture(path: str):
    """`open_capture`'s FFmpeg capture, handing out luma planes instead of BGR frames."""
    cv2 = cv2_module()
    return cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1, cv2.CAP_PROP_CONVERT_RGB, 0])


def _luma_converter(gray_capture, path: str):
    """How to turn `gray_capture`'s frames into gray ones as BGR decoding gives them, judged
    on frame 0; None if no way matches."""
    cv2 = cv2_module()
    bgr_capture = open_capture(path)
    try:
        (ok_luma, luma), (ok_bgr, bgr) = gray_capture.read(), bgr_capture.read()
    finally:
        bgr_capture.release()
    if not (ok_luma and ok_bgr) or luma is None or bgr is None or luma.ndim != 2 or luma.dtype != np.uint8:
        return None
    expected = to_gray(bgr)
    if luma.shape != expected.shape:
        return None
    candidates = [(cv2.absdiff(luma, expected).max(), False),
                  (cv2.absdiff(full_range(luma), expected).max(), True)]
    error, limited = min(candidates, key=lambda c: c[0])
    if error > GRAY_TOLERANCE:
        return None

    def convert(frame: np.ndarray) -> np.ndarray:
        if frame.ndim != 2:  # (not luma after all: as BGR)
            return to_gray(frame)
        return full_range(frame) if limited else frame

    return convert


def full_range(luma: np.ndarray) -> np.ndarray:
    """8-bit luma in the limited range (16-235) stretched to 0-255 (~20 us for 320x240: a
    lookup table took 50)."""
    return cv2_module().addWeighted(luma, LIMITED_SCALE, luma, 0, LIMITED_OFFSET)


@dataclass(frozen=True)
class Tracks:
    """Corners tracked into a frame, and how many the detection they descend from found."""

    points: np.ndarray  # float32, N x 1 x 2
    detected: int

    def worn_out(self, index: int) -> bool:
        """Too few left to go on tracking (or time for the periodic re-detection)."""
        return len(self.points) < max(3, KEEP_FRACTION * self.detected) or index % REDETECT_EVERY == 0


def detect_features(gray: np.ndarray) -> Tracks | None:
    cv2 = cv2_module()
    points = cv2.goodFeaturesToTrack(gray, maxCorners=MAX_CORNERS, qualityLevel=QUALITY,
                                     minDistance=MIN_DISTANCE, blockSize=BLOCK_SIZE)
    return None if points is None else Tracks(points, len(points))


def estimate_flow(prev: np.ndarray | None, frame: np.ndarray, tracks: Tracks | None,
                  index: int) -> tuple[Triple, Tracks | None]:
    """The transform from `prev` to `frame` and the corners tracked into `frame`."""
    cv2 = cv2_module()

    if prev is None:
        return ZERO, detect_features(frame)
    if tracks is None or tracks.worn_out(index):
        tracks = detect_features(prev)
    if tracks is None or len(tracks.points) < 3:
        return ZERO, None
    moved, status, _ = cv2.calcOpticalFlowPyrLK(prev, frame, tracks.points, None)
    good = status.ravel() == 1
    before, after = tracks.points[good], moved[good]
    if len(after) < 3:
        return ZERO, None
    after_tracks = Tracks(after, tracks.detected)
    matrix, _ = cv2.estimateAffinePartial2D(before, after)
    if matrix is None:
        return ZERO, after_tracks
    transform = (float(matrix[0, 2]), float(matrix[1, 2]), math.atan2(matrix[1, 0], matrix[0, 0]))
    return transform, after_tracks


def accumulate(trajectory: Sequence[float] | None, transform: Sequence[float]) -> Triple:
    if trajectory is None:
        return (float(transform[0]), float(transform[1]), float(transform[2]))
    return (trajectory[0] + transform[0], trajectory[1] + transform[1], trajectory[2] + transform[2])


def window_indices(index: int, radius: int, first: int, last: int) -> list[int]:
    """The 2r+1 trajectory indices averaged for frame `index`, clamped to [first, last]:
    the start of the video repeats its first trajectory, the end its last."""
    low, high = index - radius, index + radius
    if low >= first and high <= last:  # (most frames: no clamping, no per-index min/max)
        return list(range(low, high + 1))
    return [min(max(k, first), last) for k in range(low, high + 1)]


def smooth(transform: Sequence[float], trajectory_mid: Sequence[float],
           window: Sequence[Sequence[float]]) -> tuple[Triple, Triple]:
    """(smoothed transform, correction) for one frame; see the module docstring."""
    n = len(window)
    sx = sy = sa = 0.0
    for x, y, a in window:
        sx += x
        sy += y
        sa += a
    correction = (sx / n - trajectory_mid[0], sy / n - trajectory_mid[1], sa / n - trajectory_mid[2])
    smoothed = (correction[0] + transform[0], correction[1] + transform[1], correction[2] + transform[2])
    return smoothed, correction


def stabilize_offline(transforms: Sequence[Sequence[float]], radius: int) -> list[tuple[Triple, Triple]]:
    """`smooth` for every frame of a whole video at once (tests and reference)."""
    trajectories: list[Triple] = []
    previous = None
    for t in transforms:
        previous = accumulate(previous, t)
        trajectories.append(previous)
    last = len(trajectories) - 1
    return [smooth(transforms[i], trajectories[i],
                   [trajectories[k] for k in window_indices(i, radius, 0, last)])
            for i in range(len(trajectories))]


def correction_matrix(correction: Sequence[float]) -> np.ndarray:
    """2x3 affine: rotate by correction[2] (radians) about the origin, then translate."""
    c, s = math.cos(correction[2]), math.sin(correction[2])
    return np.array([[c, -s, correction[0]], [s, c, correction[1]]], dtype=np.float64)


def warp(frame: np.ndarray, correction: Sequence[float]) -> np.ndarray:
    """Frame i moved onto the smoothed camera path."""
    cv2 = cv2_module()

    h, w = frame.shape[:2]
    return cv2.warpAffine(frame, correction_matrix(correction), (w, h), borderMode=cv2.BORDER_REFLECT)
