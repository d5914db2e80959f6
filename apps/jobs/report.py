"""What a job reports: summary.csv, summary.md, a Rich table and overlay plots; `compare`.

Owns reading a job's run directory back (resolved.json for the runs and their order,
ledger.jsonl for each run's latest status, each run folder's summary.json), picking summary
fields by dotted path (`latency_above_floor_s.p99`, `failures.0.spike_max_above_floor_s`),
and writing the comparison files. Plots are the app kind's (kinds/), drawn over every run
folder that has the files it needs. `rows_of(dirs)` accepts job run directories and single
run folders alike, for `ownrun runs compare`. Does not run anything. Thread-safe (files are
written by the caller's thread). Failures: FileNotFoundError for a directory that is neither.
"""
from __future__ import annotations

import csv
import importlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from . import ledger as ledger_mod

BASE_COLUMNS = ["run", "status", "duration_s"]


@dataclass
class Row:
    label: str
    folder: Path
    kind: str | None
    status: str
    duration_s: float | None = None
    error: str | None = None
    summary: dict = field(default_factory=dict)


def value_at(summary, path: str):
    """The value at a dotted path ("a.b.0.c"), or None."""
    node = summary
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _summary(folder: Path) -> dict:
    try:
        return json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def job_rows(run_dir: Path, prefix: str = "") -> list[Row]:
    """One row per run of a job's run directory, in the job's order, with its latest status."""
    run_dir = Path(run_dir)
    resolved = json.loads((run_dir / "resolved.json").read_text())
    latest: dict[str, dict] = {}
    for event in ledger_mod.read(run_dir / ledger_mod.LEDGER):
        if event.get("event") in ("run_start", "run_end"):
            latest[event["run"]] = event
    rows = []
    for run in resolved["runs"]:
        event = latest.get(run["name"])
        if event is None:
            continue  # never started (not selected, or the job stopped first)
        status = event.get("status", "running") if event["event"] == "run_end" else "unfinished"
        rows.append(Row(prefix + run["name"], run_dir / run["name"], run.get("kind"), status,
                        event.get("duration_s"), event.get("error"), _summary(run_dir / run["name"])))
    return rows


def rows_of(dirs: list[Path]) -> list[Row]:
    """Rows of several job run directories (labelled job/timestamp/run) or run folders."""
    rows = []
    for d in map(Path, dirs):
        if (d / "resolved.json").exists():
            rows.extend(job_rows(d, prefix=f"{d.parent.name}/{d.name}/"))
        elif (d / "summary.json").exists():
            config = _json(d / "config.json")
            rows.append(Row(f"{d.parent.name}/{d.name}", d, config.get("kind"), "ok", summary=_summary(d)))
        else:
            raise FileNotFoundError(2, "neither a job run directory (resolved.json) nor a run folder "
                                       "(summary.json)", str(d))
    return rows


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_csv(rows: list[Row], fields: list[str], path: Path) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(BASE_COLUMNS + fields + ["error"])
        for r in rows:
            out.writerow([r.label, r.status, r.duration_s]
                         + [_csv_value(value_at(r.summary, name)) for name in fields] + [r.error or ""])


def _csv_value(value):
    return json.dumps(value) if isinstance(value, (dict, list)) else ("" if value is None else value)


def markdown(rows: list[Row], fields: list[str], title: str) -> str:
    head = BASE_COLUMNS + fields
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.label, r.status, _text(r.duration_s)] + [_text(value_at(r.summary, n)) for n in fields]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    errors = [f"* {r.label}: {r.error}" for r in rows if r.error]
    return "\n".join(lines + ([""] + ["Errors:", ""] + errors if errors else [])) + "\n"


def headers(fields: list[str]) -> list[str]:
    """Short column names: each field's shortest dotted suffix that no other field shares."""
    out = []
    for name in fields:
        parts = name.split(".")
        for k in range(1, len(parts) + 1):
            suffix = ".".join(parts[-k:])
            if sum(1 for other in fields if other == suffix or other.endswith("." + suffix)) == 1:
                break
        out.append(suffix)
    return out


def table(rows: list[Row], fields: list[str], title: str):
    from rich.table import Table

    t = Table(title=title, header_style="bold")
    for name in ["run", "status", "s"] + headers(fields):
        t.add_column(name, justify="left" if name in ("run", "status") else "right", overflow="fold")
    for r in rows:
        color = {"ok": "green", "skipped": "green"}.get(r.status, "red")
        t.add_row(r.label, f"[{color}]{r.status}[/]", _text(r.duration_s),
                  *(_text(value_at(r.summary, n)) for n in fields))
    return t


def plot(kind, name: str | None, folders: list[Path], out: Path) -> Path | None:
    """The kind's overlay plot `name` of `folders`, or None (no plot, or no run to draw)."""
    if name is None or name not in kind.plots:
        return None
    module, _, function = kind.plots[name].partition(":")
    return getattr(importlib.import_module(module), function)(folders, out)


def write_reports(run_dir: Path, kind, fields: list[str], plot_name: str | None) -> list[Row]:
    """summary.csv, summary.md and the overlay plot (<plot>.png) of a job's run directory."""
    rows = job_rows(run_dir)
    title = f"{run_dir.parent.name} {run_dir.name}"
    write_csv(rows, fields, run_dir / "summary.csv")
    (run_dir / "summary.md").write_text(markdown(rows, fields, title))
    plot(kind, plot_name, [r.folder for r in rows if r.status == "ok"], run_dir / f"{plot_name}.png")
    return rows


# ---- dry runs and comparisons ----------------------------------------------------------------
def run_list(job, runs) -> object:
    """The expanded runs of a job as a Rich table (for --dry-run)."""
    from rich.table import Table

    from .expand import flatten

    options = [flatten(r.options) for r in runs]
    first = options[0] if options else {}
    varying = sorted({p for o in options for p, v in o.items() if v != first.get(p)})
    t = Table(title=f"{job.name}: {len(runs)} runs of kind {job.kind.name}", header_style="bold")
    for name in ["run", *(".".join(p) for p in varying), "cluster", "hash"]:
        t.add_column(name, overflow="fold")
    for r, o in zip(runs, options, strict=True):
        cluster = r.cluster.get("address") or (f"{r.cluster['nodes']} node(s)"
                                               + (", fresh" if r.fresh_cluster else ", shared"))
        t.add_row(r.name, *(_text(o.get(p)) for p in varying), cluster, r.config_hash)
    return t


@dataclass
class Comparison:
    rows: list[Row]
    fields: list[str]
    kind: str | None


def compare(dirs: list[Path], fields: list[str]) -> Comparison:
    from .kinds import registry

    rows = rows_of(dirs)
    kinds = {r.kind for r in rows if r.kind}
    kind = kinds.pop() if len(kinds) == 1 else None
    if not fields:
        first = next((Path(d) for d in dirs if (Path(d) / "resolved.json").exists()), None)
        resolved = _json(first / "resolved.json") if first else {}
        fields = resolved.get("report", {}).get("fields") or (
            list(registry()[kind].summary_fields) if kind in registry() else [])
    return Comparison(rows, fields, kind)


def compare_plot(comparison: Comparison, out: Path) -> Path | None:
    from .kinds import registry

    kind = registry().get(comparison.kind) if comparison.kind else None
    if kind is None:
        return None
    return plot(kind, kind.default_plot, [r.folder for r in comparison.rows if r.status == "ok"], out)
