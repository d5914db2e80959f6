"""What every benchmark's JSON records about the run besides its results.

Owns: the run's metadata — date, load average (1/5/15 min) at start and end, git revision,
the machine (nproc, CPU model, RAM), the ownrun and Python versions, the command line — and
the JSON document layout shared by every suite (`document()`, `write()`).
Does not: measure anything or know the engine.
How it fails: never raises for a missing fact (no git checkout, no /proc): the field is None.
Pure functions plus reads of /proc, git and the clock; thread-safe.
"""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

SCHEMA = 1
REPO = Path(__file__).resolve().parent.parent  # the checkout, when installed editable
KEYS = ("schema", "benchmark", "date", "load_average", "git", "machine", "versions", "argv",
        "background_load", "config", "results")  # every document has these


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _ram_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine() -> dict[str, Any]:
    return {"nproc": os.cpu_count(), "cpu_model": _cpu_model(), "ram_bytes": _ram_bytes(),
            "platform": platform.platform()}


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git() -> dict[str, Any]:
    """The checkout's revision and whether tracked files other than the README and the
    results (which report.py and the benchmarks rewrite) differ from it (None outside git)."""
    revision = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  ":!README.md", ":!benchmarks/results") if revision else None
    return {"revision": revision, "dirty": None if status is None else bool(status)}


def versions() -> dict[str, str | None]:
    try:
        ownrun = importlib.metadata.version("ownrun")
    except importlib.metadata.PackageNotFoundError:
        ownrun = None
    return {"ownrun": ownrun, "python": platform.python_version()}


class Run:
    """The metadata of one benchmark run: create it when the run starts (date, load), call
    `document()` when it ends (load again)."""

    def __init__(self, benchmark: str, background_load: int = 0) -> None:
        self.benchmark, self.background_load = benchmark, background_load
        self.date, self.load_start = now(), load_average()

    def document(self, config: dict[str, Any], results: Any, **extra: Any) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "benchmark": self.benchmark,
            "date": self.date,
            "load_average": {"start": self.load_start, "end": load_average()},
            "git": git(),
            "machine": machine(),
            "versions": versions(),
            "argv": list(sys.argv),
            "background_load": self.background_load,
            "config": config,
            "results": results,
            **extra,
        }


def write(document: dict[str, Any], path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def _loads(values: list[float] | None) -> str:
    return "/".join(f"{x:.1f}" for x in values) if values else "?"


def describe(document: dict[str, Any]) -> str:
    """One line saying where and when a result was measured, for tables and the README."""
    m, load, g = document.get("machine") or {}, document.get("load_average") or {}, \
        document.get("git") or {}
    ram = f", {m['ram_bytes'] / 2**30:.0f} GiB" if m.get("ram_bytes") else ""
    start, end = load.get("start"), load.get("end")
    revision = (g.get("revision") or "?")[:10] + ("+dirty" if g.get("dirty") else "")
    busy = document.get("background_load") or 0
    return (f"{document.get('date', '?')[:10]}, {m.get('nproc', '?')} CPUs "
            f"({m.get('cpu_model') or 'unknown CPU'}){ram}, load average {_loads(start)} → "
            f"{_loads(end)} (1/5/15 min), git {revision}, ownrun "
            f"{(document.get('versions') or {}).get('ownrun')}, Python "
            f"{(document.get('versions') or {}).get('python')}"
            + (f", {busy} busy-loop process{'es' if busy > 1 else ''} during latency rows"
               if busy else ""))
