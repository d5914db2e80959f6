"""Synthetic shaky videos with a known camera path, for `ownrun video` without `--input`.

Owns generating, encoding (OpenCV VideoWriter, 'mp4v') and caching the clips, and loading
their ground truth. Does not decode or stabilize (pipeline.py) nor score (report.py).

A clip is a textured scene seen through a camera whose per-frame displacement is
`u_i = m_i + j_i`: a slow intended sway `m_i` (sinusoids in x, y and angle) plus i.i.d.
Gaussian jitter `j_i` (translation in px, rotation in degrees), then Gaussian pixel noise and
mp4v compression. Frame i is `warpAffine(scene, [R(a_i) | t_i - R(a_i) o])`: the scene point
`o` lands at the frame origin, so the frame-to-frame transform that the pipeline measures
(rotation about the origin, then translation) adds up to `u_i - u_0` up to second-order terms.

Clips are cached by their parameters under `cache_dir` (default ~/.cache/ownrun/videos, or
$OWNRUN_VIDEO_CACHE): `<name>.mp4`, `<name>.truth.npy` (frames x 6: x, y, angle in degrees
of the actual displacement, then of the intended one) and `<name>.json` (the spec). A clip is
written to a temporary name and renamed, so concurrent or interrupted runs never leave a
half-written clip under its final name. Pure functions; safe to call from any thread.
Failures: `RuntimeError` when OpenCV cannot open a writer for mp4v.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

VERSION = 1  # bump when the generator changes: the cache key includes it
TRUTH_COLUMNS = ["x", "y", "angle_deg", "intended_x", "intended_y", "intended_angle_deg"]


def default_cache_dir() -> Path:
    env = os.environ.get("OWNRUN_VIDEO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ownrun" / "videos"


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of one clip; equal specs give identical files (seeded)."""

    width: int = 160
    height: int = 120
    fps: float = 10.0
    frames: int = 600
    seed: int = 0
    jitter_px: float = 3.0  # sigma of the per-frame translation jitter
    jitter_deg: float = 0.5  # sigma of the per-frame rotation jitter
    noise: float = 3.0  # sigma of the per-pixel noise, in gray levels
    sway_px: float = 8.0  # amplitude of the intended (smooth) motion
    sway_deg: float = 1.0

    @property
    def name(self) -> str:
        key = json.dumps({**asdict(self), "version": VERSION}, sort_keys=True)
        digest = hashlib.blake2b(key.encode(), digest_size=5).hexdigest()
        return (f"synthetic-{self.width}x{self.height}-{self.fps:g}fps-{self.frames}f-"
                f"s{self.seed}-{digest}")


@dataclass(frozen=True)
class SyntheticVideo:
    spec: SyntheticSpec
    path: Path
    truth_path: Path

    def truth(self) -> np.ndarray:
        return np.load(self.truth_path)


def camera_path(spec: SyntheticSpec) -> np.ndarray:
    """frames x 6: actual (x, y, angle_deg) then intended (x, y, angle_deg) displacement."""
    rng = np.random.default_rng([spec.seed, 7])
    t = np.arange(spec.frames) / spec.fps
    phase = rng.uniform(0, 2 * math.pi, 3)
    intended = np.stack([
        spec.sway_px * np.sin(2 * math.pi * t / 9.0 + phase[0]),
        0.6 * spec.sway_px * np.sin(2 * math.pi * t / 6.5 + phase[1]),
        spec.sway_deg * np.sin(2 * math.pi * t / 11.0 + phase[2]),
    ], axis=1)
    jitter = rng.normal(0.0, 1.0, (spec.frames, 3)) * [spec.jitter_px, spec.jitter_px, spec.jitter_deg]
    return np.concatenate([intended + jitter, intended], axis=1)


def _margin(spec: SyntheticSpec) -> int:
    """Scene border so rotated and shifted views never leave the scene."""
    reach = spec.sway_px + 4 * spec.jitter_px
    turn = math.radians(spec.sway_deg + 4 * spec.jitter_deg) * math.hypot(spec.width, spec.height)
    return int(math.ceil(reach + turn)) + 4


def make_scene(spec: SyntheticSpec) -> np.ndarray:
    """A uint8 scene rich in corners: blurred noise, rectangles, circles and lines."""
    import cv2

    rng = np.random.default_rng([spec.seed, 11])
    margin = _margin(spec)
    h, w = spec.height + 2 * margin, spec.width + 2 * margin
    base = rng.uniform(60, 190, (h // 8 + 2, w // 8 + 2)).astype(np.float32)
    scene = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    area = w * h
    for _ in range(max(12, area // 900)):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = int(rng.integers(4, max(6, min(w, h) // 6)))
        shade = float(rng.uniform(0, 255))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.rectangle(scene, (x, y), (x + size, y + int(size * rng.uniform(0.5, 1.5))), shade, -1)
        elif kind == 1:
            cv2.circle(scene, (x, y), size // 2, shade, -1)
        else:
            end = (x + int(rng.integers(-size, size)), y + int(rng.integers(-size, size)))
            cv2.line(scene, (x, y), end, shade, 2)
    return np.clip(scene, 0, 255).astype(np.uint8)


def affine(x: float, y: float, angle_deg: float) -> np.ndarray:
    """2x3 matrix: rotate by `angle_deg` about the origin, then translate by (x, y)."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, x], [s, c, y]], dtype=np.float64)


def render_frames(spec: SyntheticSpec, path: np.ndarray | None = None):
    """Yields the clip's grayscale frames (uint8, height x width), before encoding."""
    import cv2

    path = camera_path(spec) if path is None else path
    scene = make_scene(spec)
    margin = _margin(spec)
    rng = np.random.default_rng([spec.seed, 13])
    origin = np.array([margin, margin], dtype=np.float64)
    for x, y, angle, *_ in path:
        m = affine(x, y, angle)
        m[:, 2] -= m[:, :2] @ origin  # scene point `origin` -> frame (0, 0) before the shift
        frame = cv2.warpAffine(scene, m, (spec.width, spec.height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        if spec.noise > 0:
            noisy = frame.astype(np.float32) + rng.normal(0, spec.noise, frame.shape).astype(np.float32)
            frame = np.clip(noisy, 0, 255).astype(np.uint8)
        yield frame


def write_mp4(path: Path, frames, fps: float, size: tuple[int, int]) -> None:
    """Encodes grayscale frames with OpenCV's VideoWriter ('mp4v')."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size, True)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v video {path} (is FFmpeg support missing?)")
    try:
        for frame in frames:
            writer.write(frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    finally:
        writer.release()


def ensure_video(spec: SyntheticSpec, cache_dir: Path | None = None) -> SyntheticVideo:
    """The cached clip for `spec`, generating it first if it is missing."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    video = SyntheticVideo(spec, cache / f"{spec.name}.mp4", cache / f"{spec.name}.truth.npy")
    if video.path.exists() and video.truth_path.exists():
        return video
    cache.mkdir(parents=True, exist_ok=True)
    tag = f".tmp-{os.getpid()}"
    path = camera_path(spec)
    tmp_video = video.path.with_name(video.path.stem + tag + ".mp4")
    tmp_truth = video.truth_path.with_name(video.truth_path.name + tag + ".npy")
    try:
        write_mp4(tmp_video, render_frames(spec, path), spec.fps, (spec.width, spec.height))
        np.save(tmp_truth, path)
        meta = {**asdict(spec), "version": VERSION, "columns": TRUTH_COLUMNS,
                "video": video.path.name, "truth": video.truth_path.name}
        (cache / f"{spec.name}.json").write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp_truth, video.truth_path)
        os.replace(tmp_video, video.path)
    finally:
        for tmp in (tmp_video, tmp_truth):
            tmp.unlink(missing_ok=True)
    return video


def missing(specs: list[SyntheticSpec], cache_dir: Path | None = None) -> int:
    """How many distinct clips of `specs` `ensure_videos` would have to generate."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return sum(1 for s in dict.fromkeys(specs) if not (cache / f"{s.name}.mp4").exists()
               or not (cache / f"{s.name}.truth.npy").exists())


def ensure_videos(specs: list[SyntheticSpec], cache_dir: Path | None = None,
                  workers: int | None = None) -> list[SyntheticVideo]:
    """`ensure_video` for each spec; missing distinct clips are generated in parallel."""
    unique = list(dict.fromkeys(specs))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    missing = [s for s in unique if not (cache / f"{s.name}.mp4").exists()
               or not (cache / f"{s.name}.truth.npy").exists()]
    if len(missing) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(len(missing), workers or os.cpu_count() or 1)) as pool:
            list(pool.map(ensure_video, missing, [cache] * len(missing)))
    done = {s: ensure_video(s, cache) for s in unique}
    return [done[s] for s in specs]
