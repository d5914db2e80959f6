"""The registry of app kinds a job file can run: `[app] kind = "video" | "python" | "rl"`.

Each kind (`AppKind`) says which pydantic model checks its options (the app's own, the one
its CLI builds its flags from: apps/<app>/config.py), which options the job sets for it from
`[cluster]` instead of the app table (`managed`), what else to check before anything starts
(`check`: files, imports, combinations with the cluster), what to run in a run's driver
process (`runner`, "module:function"), and the summary fields and overlay plots its reports
use; a kind whose options pick their model (rl: `algo = "es" | "ppo"`) says how
(`variant`). An app that is not installed raises `AppNotInstalled` from `model()`; validation reports
it as one problem. Thread-safe (immutable records).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

Loc = tuple  # a path inside the app's options (str keys, int positions) or ("cluster", key)


class AppNotInstalled(Exception):
    """The kind is known but its app is not part of this installation."""


@dataclass(frozen=True)
class RunContext:
    """What a run's options are checked against: its cluster, whether it gets one of its own,
    and the job file's folder (relative paths are relative to it)."""

    cluster: dict
    fresh_cluster: bool
    base_dir: Path


@dataclass(frozen=True)
class AppKind:
    name: str
    model: Callable[[], type[BaseModel]]  # raises AppNotInstalled
    runner: str  # "module:function"(config: BaseModel, cluster: dict, run_dir: Path, console) -> summary dict
    managed: dict[str, Callable[[RunContext], object]] = field(default_factory=dict)
    check: Callable[[BaseModel, RunContext], list[tuple[Loc, str]]] = lambda config, ctx: []
    summary_fields: tuple[str, ...] = ()  # dotted paths the reports show by default
    summary_keys: tuple[str, ...] = ()  # the top-level keys of its summary.json, if fixed
    plots: dict[str, str] = field(default_factory=dict)  # plot name -> "module:function"(folders, png)
    default_plot: str | None = None
    variant: Callable[[dict], type[BaseModel]] | None = None  # the model of one run's options, if they pick it

    def model_for(self, options: dict) -> type[BaseModel]:
        """The model that checks one run's options: the kind's, or the one they pick (rl: `algo`)."""
        return self.variant(options) if self.variant is not None else self.model()


def registry() -> dict[str, AppKind]:
    from . import python, rl, video

    return {kind.name: kind for kind in (video.KIND, python.KIND, rl.KIND)}
