"""Every option of `ownrun video`, defined once (a pydantic v2 model).

Owns `VideoConfig`: names, defaults, constraints and help texts of the command's options, and
which failure kinds `--fail` takes (the spec itself is apps/failures.py's `FailurePlan`).
A field's name is its CLI flag with `-` for `_` (`checkpoint_interval` is `--checkpoint-interval`; a field may name another flag in
`json_schema_extra={"flag": ...}`), so the CLI (cli/video.py builds its flags from this model)
and job files (`[app.video]` tables of `ownrun run`, apps/jobs/) validate the same values with
the same rules. An unknown key is an error (`extra="forbid"`).

Rules across fields live here too, as field validators, so a job file reports them at the
offending key: `fail = "node@..."` needs `nodes >= 2` on an embedded cluster.

Imports only pydantic and the standard library (no engine, no OpenCV). Thread-safe
(immutable models). Failures: `pydantic.ValidationError`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
)

from ..failures import FailurePlan

FAIL_KINDS = ("decoder", "owner", "node")
MIN_SIDE = 32


def parse_failure(text: str) -> FailurePlan:
    """`--fail KIND@Ns`: what to kill, N seconds after the first frame's release."""
    return FailurePlan.parse(text, FAIL_KINDS, "decoder@10s")


def parse_size(value) -> tuple[int, int]:
    """"WIDTHxHEIGHT" (or a pair) -> (width, height), each at least MIN_SIDE."""
    if isinstance(value, str):
        try:
            width, height = (int(part) for part in value.lower().split("x"))
        except ValueError:
            raise ValueError(f"size must look like WIDTHxHEIGHT (e.g. 320x240), got {value!r}") from None
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        width, height = value
    else:
        raise ValueError(f"size must look like WIDTHxHEIGHT (e.g. 320x240), got {value!r}")
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ValueError(f"size must be at least {MIN_SIDE}x{MIN_SIDE}, got {width}x{height}")
    return width, height


class VideoConfig(BaseModel):
    """The options of `ownrun video` (and of `[app.video]` in a job file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    videos: int = Field(60, ge=1, description="Synthetic videos to process.")
    fps: float | None = Field(None, ge=0.1, description="Frame rate of the real-time input (synthetic default 4; "
                                                        "inputs: the file's). The smoothing radius is r = fps frames.")
    frames: int | None = Field(None, ge=2, description="Frames per video (synthetic default 400, i.e. 100 s; "
                                                       "inputs: the whole file).")
    size: tuple[int, int] = Field((320, 240), description="Synthetic frame size WIDTHxHEIGHT; 320x240 grayscale "
                                                          "(75 KiB) travels inline.")
    input: list[str] = Field(default_factory=list, description="Video files to process instead of synthetic ones "
                                                                "(repeatable; extra paths after --input are taken too).")
    output: str | None = Field(None, description="Write each stabilized video here as <video>.mp4 (default: none).")
    address: str | None = Field(None, description="Run on the cluster at HOST:PORT instead of an embedded one.")
    nodes: int = Field(1, ge=1, description="Nodes of the embedded cluster.")
    num_cpus: float | None = Field(None, gt=0, description="CPUs per node (default: the CPUs this process may use: the machine's, fewer under a CPU quota or affinity mask).")
    metadata: Literal["ownership", "centralized"] = Field(
        "ownership", description="ownership, or centralized (the paper's baseline).")
    by_value: bool = Field(False, description="Pass every object by value.")
    checkpoint_interval: int = Field(0, ge=0, description="Checkpoint every K frames (0: off).")
    fail: str | None = Field(None, description="Inject a failure: decoder@10s, owner@10s or node@10s "
                                               "(node needs --nodes 2+).")
    runs_dir: str = Field("runs", description="Where run directories go.", json_schema_extra={"flag": "--runs"})
    timeline: str | None = Field(None, description="Write a Chrome trace (ui.perfetto.dev) of the run to this file "
                                                   "(relative: inside the run directory, e.g. trace.json).",
                                 json_schema_extra={"metavar": "PATH"})
    live: bool = Field(True, description="Show a live view while running.",
                       json_schema_extra={"flag": "--live/--no-live"})

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value):
        return parse_size(value)

    @field_serializer("size")
    def _size_text(self, size: tuple[int, int]) -> str:
        return f"{size[0]}x{size[1]}"

    @field_validator("fail")
    @classmethod
    def _fail(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        plan = parse_failure(value)
        nodes, address = info.data.get("nodes", 1), info.data.get("address")
        if plan.kind == "node" and nodes < 2 and not address:
            raise ValueError("a node failure needs an embedded multi-node cluster: nodes = 2 or more "
                             "(node 0 runs the driver, Sinks and owners; the others the Decoders)")
        return str(plan)

    @property
    def failure_plan(self) -> FailurePlan | None:
        return parse_failure(self.fail) if self.fail else None
