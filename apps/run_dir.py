"""The run directory every app writes: a new timestamped folder, and summary.json in it.

`new_run_dir(base)` is `base/<YYYYmmdd-HHMMSS>` (with `-2`, `-3`, ... when that exists; not
created here); `write_summary` writes summary.json, turning numpy values and paths into JSON;
`write_timeline` writes the run's Chrome trace (`--timeline`) with the public
`engine.timeline(path)`, before the app shuts the engine down.
The apps add their own table next to it (video: frames.csv, rl: iterations.csv). Thread-safe
apart from two callers racing for the same new folder name. Failures: OSError.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

SUMMARY = "summary.json"


def new_run_dir(base: str | Path) -> Path:
    path = Path(base) / time.strftime("%Y%m%d-%H%M%S")
    candidate, k = path, 1
    while candidate.exists():
        k += 1
        candidate = path.with_name(f"{path.name}-{k}")
    return candidate


def write_summary(run_dir: Path, summary: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / SUMMARY).write_text(json.dumps(summary, indent=2, default=json_default) + "\n")


def write_timeline(run_dir: Path, path: str | Path) -> Path:
    """The engine's timeline as a Chrome trace at `path` (relative: inside `run_dir`)."""
    from ownrun import engine

    target = Path(run_dir) / path
    target.parent.mkdir(parents=True, exist_ok=True)
    engine.timeline(str(target))
    return target


def json_default(value):
    """numpy scalars and arrays, and paths, as JSON values."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
