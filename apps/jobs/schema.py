"""The sections of a job file that do not depend on the app: `[job]`, `[cluster]`, `[report]`,
the shape of `[[runs]]` entries and of `[matrix]`, as pydantic v2 models.

What each app accepts (`[app.video]`, `[app.python]`, ...) is the app's own model, found
through the registry in kinds/. Every model forbids unknown keys. The top-level tables are
`SECTIONS`. Rules that need more than one section (a node failure needs nodes >= 2, per-run cluster settings need a fresh cluster, ...)
live in validate.py. Pure; thread-safe (models are immutable). Failures:
`pydantic.ValidationError`, mapped to file lines by validate.py.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._=,+-]*$"  # run and job names become folder names


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobSection(_Strict):
    """`[job]`: what the job is called, where its runs go and how they run."""

    name: str | None = Field(None, pattern=NAME_PATTERN, description="Job name (default: the file's stem).")
    runs_dir: str = Field("runs", description="Run directories go to RUNS_DIR/<name>/<timestamp>/ "
                                              "(relative to the current directory).")
    repeat: int = Field(1, ge=1, description="Run every run this many times.")
    timeout_s: float | None = Field(None, gt=0, description="End a run that takes longer (recorded as timeout).")
    on_failure: Literal["continue", "stop"] = Field("continue", description="After a failed run: go on, or stop.")
    fresh_cluster: bool = Field(False, description="A new embedded cluster per run (failure experiments need "
                                                   "it) instead of one for the whole job.")
    max_runs: int = Field(100, ge=1, description="Refuse a job that expands to more runs than this.")


class ClusterSection(_Strict):
    """`[cluster]`: the engine the runs use. No address: an embedded cluster on this machine."""

    address: str | None = Field(None, description="HOST:PORT of a running cluster (`ownrun start`).")
    nodes: int = Field(1, ge=1, description="Nodes of the embedded cluster.")
    num_cpus: float | None = Field(None, gt=0, description="CPUs per node (default: the CPUs this process may use: the machine's, fewer under a CPU quota or affinity mask).")
    object_store_memory: int | None = Field(None, gt=0, description="Bytes of each node's shared-memory store.")
    node_death_timeout: float | None = Field(None, gt=0, description="Seconds without heartbeats before a node "
                                                                     "is declared dead (default: the app's).")

    @model_validator(mode="after")
    def _address_excludes_embedded_settings(self):
        if self.address:
            given = [k for k in ("num_cpus", "object_store_memory", "node_death_timeout")
                     if getattr(self, k) is not None] + (["nodes"] if self.nodes != 1 else [])
            if given:
                raise ValueError(f"{', '.join(given)} describe an embedded cluster: they cannot be given "
                                 f"with address (a running cluster has its own)")
        return self


class ReportSection(_Strict):
    """`[report]`: which summary fields the comparison shows and which plot to draw."""

    fields: list[str] | None = Field(None, description="Dotted paths into each run's summary.json "
                                                        "(default: the app's).")
    plot: str | None = Field(None, description="Overlay plot: the app's (video: latency_cdf), or none.")


class RunEntry(BaseModel):
    """One `[[runs]]` entry: a name, and overrides of the app's options (and, with a fresh
    cluster per run, a `cluster` table)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="The run's name (its folder's name).")


SECTIONS = ("job", "cluster", "app", "runs", "matrix", "report")  # the top-level tables of a job file
