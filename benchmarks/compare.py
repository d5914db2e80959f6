"""ownrun next to Ray, Dask and the machine's floors: the same benchmark bodies through each
system's public API, interleaved in rounds.

    python benchmarks/compare.py [--with ray[,dask]] [--rounds 3] [--background-load N] [--quick]

Owns: the runs and their order — each round runs every system, and the floors, each in a
child process of its own (`--child NAME`), so no system's processes or imports disturb
another's, and a slow phase of the machine hits every column alike; the medians over rounds
(with their range); the table with "ownrun vs Ray" and "ownrun vs floor"; the JSON
(benchmarks/results/compare.json by default) with the run's metadata (`meta`).
Installs nothing: Ray and Dask are measured when they are importable in this Python, and the
table and the JSON say so when they are not (`systems.INSTALL_HINT` shows how).
Does not: define the bodies (`bodies`), the floors (`floors`, `pipeline_floors`) or the
systems (`systems`).
How it fails: a child that fails or times out leaves that round's cells empty and its error
in the JSON (`errors`); the other systems and rounds still run; the exit code is 1 then.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from ownrun.benchmarks import RESULTS_DIR, bodies, meta, systems
from ownrun.benchmarks.bodies import BY_KEY, ROWS, Sizes
from rich.console import Console
from rich.markup import escape
from rich.table import Table

LOAD_SUFFIX = "@load"  # a row key measured with --background-load N busy loops
FLOORS = "floors"
Values = dict[str, float]


# --- the child: one system (or the floors), one round ---------------------------------------

def _measure_system(name: str, sizes: Sizes, keys: set[str], busy: int) -> tuple[Values, dict]:
    from ownrun.benchmarks.load import BackgroundLoad

    system = systems.create(name)
    values: Values = {}
    errors: dict[str, str] = {}
    wanted = {k for k in keys if system.supports(k)}
    system.start(sizes_cpus())
    try:
        for body, body_keys in bodies.BODIES:
            mine = wanted & body_keys
            if not mine:
                continue
            try:
                values.update(body(system, sizes, mine))
                latency = {k for k in mine if BY_KEY[k].latency}
                if busy and latency:
                    with BackgroundLoad(busy):
                        found = body(system, sizes, latency)
                    values.update({k + LOAD_SUFFIX: v for k, v in found.items()})
            except Exception as exc:
                errors[body.__name__] = _one_line(exc)
    finally:
        system.stop()
    return values, errors


def _measure_floors(sizes: Sizes, keys: set[str], busy: int) -> tuple[Values, dict]:
    from ownrun.benchmarks import floors, pipeline_floors
    from ownrun.benchmarks.load import BackgroundLoad

    values: Values = {}
    errors: dict[str, str] = {}
    try:
        values.update(floors.measure(sizes.quick, sizes.big))
        values["reqrep_per_s"] = 1e6 / values["reqrep_us"]
        if busy:
            with BackgroundLoad(busy):
                us = floors.reqrep_us(300 if sizes.quick else 2000)
            values.update({"reqrep_us" + LOAD_SUFFIX: us,
                           "reqrep_per_s" + LOAD_SUFFIX: 1e6 / us})
    except Exception as exc:
        errors["floors"] = _one_line(exc)
    if "video_batch" in keys:
        try:
            serial = bodies.serial_fps(sizes)
            values["video_serial_fps"] = serial
            values["video_limit_fps"] = serial * sizes_cpus()
        except Exception as exc:
            errors["video serial"] = _one_line(exc)
        try:
            values.update(pipeline_floors.measure(sizes_cpus(), sizes))
        except Exception as exc:
            errors["video pipeline floors"] = _one_line(exc)
    return values, errors


def sizes_cpus() -> int:
    return int(os.environ.get("OWNRUN_COMPARE_CPUS") or os.cpu_count() or 1)


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join([f"{type(exc).__name__}:", *lines[:1], *lines[1:][-1:]]).rstrip(":")


def child(name: str, out: Path, quick: bool, keys: set[str], busy: int) -> int:
    sizes = Sizes(quick=quick, timeout_s=60.0 if quick else 300.0)
    try:
        if name == FLOORS:
            values, errors = _measure_floors(sizes, keys, busy)
        else:
            values, errors = _measure_system(name, sizes, keys, busy)
    except Exception as exc:  # start() failed: the whole round of this system is lost
        values, errors = {}, {"start": _one_line(exc), "traceback": traceback.format_exc()}
    out.write_text(json.dumps({"values": values, "errors": errors}))
    return 0


# --- the parent: rounds, medians, table, JSON ------------------------------------------------

def _run_child(name: str, args: argparse.Namespace, keys: set[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ownrun-compare-") as tmp:
        out = Path(tmp) / "out.json"
        command = [sys.executable, "-m", "ownrun.benchmarks.compare", "--child", name,
                   "--child-out", str(out), "--rows", ",".join(sorted(keys)),
                   "--background-load", str(args.background_load)] + \
            (["--quick"] if args.quick else [])
        env = dict(os.environ, OWNRUN_COMPARE_CPUS=str(args.cpus))
        try:
            proc = subprocess.run(command, capture_output=True, text=True, env=env,
                                  timeout=args.child_timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return {"values": {}, "errors": {"child": f"timed out after {args.child_timeout} s"}}
        if out.exists():
            return json.loads(out.read_text())
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        return {"values": {}, "errors": {"child": f"exit code {proc.returncode}: {tail}"}}


def _columns(with_: list[str]) -> list[str]:
    return ["ownrun", *[s for s in with_ if s != "ownrun"]]


def summarize(rounds: list[dict[str, dict]]) -> dict[str, dict[str, dict]]:
    """{column: {key: {"median", "min", "max", "rounds"}}} over the rounds."""
    merged: dict[str, dict[str, list[float]]] = {}
    for one in rounds:
        for column, result in one.items():
            for key, value in result["values"].items():
                merged.setdefault(column, {}).setdefault(key, []).append(value)
    return {column: {key: {"median": statistics.median(vs), "min": min(vs), "max": max(vs),
                           "rounds": vs} for key, vs in found.items()}
            for column, found in merged.items()}


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if abs(value) >= 10_000:
        text = f"{value / 1000:,.1f}k"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    else:
        text = f"{value:.2g}" if abs(value) < 1 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def vs_other(spec: bodies.RowSpec, ours: float | None, theirs: float | None) -> str:
    """"6.1× faster" / "14× slower" (or "" when a value is missing)."""
    if not ours or not theirs:
        return ""
    ratio = ours / theirs if spec.higher_is_better else theirs / ours
    return f"{ratio:.2g}× faster" if ratio >= 1 else f"{1 / ratio:.2g}× slower"


def vs_floor(spec: bodies.RowSpec, ours: float | None, floor: float | None) -> str:
    """A latency as a multiple of its floor ("3.3× the floor"); a rate as a share of it."""
    if not ours or not floor:
        return ""
    if spec.higher_is_better:
        return f"{ours / floor:.0%} of floor"
    return f"{ours / floor:.2g}× the floor"


def _pipeline_floors(document: dict[str, Any], floors: dict, floor_text: str,
                     versus_floor: str, own: float | None) -> tuple[str, str]:
    """The mini pipeline's floor cells: 2 x serial, and (`pipeline_floors`) the cores' rate
    side by side, the minimal dispatcher's (a message per task, and batched) and the stages' own
    as they run in worker processes, each with ownrun's share of it."""
    if floors.get("video_serial_fps"):
        floor_text += f" ({_fmt(floors['video_serial_fps']['median'])} serial × " \
                      f"{document['cpus']})"
        versus_floor = versus_floor.replace("of floor", f"of serial × {document['cpus']}")
    for key, label in (("video_side_by_side_fps", "side by side"),
                       ("video_dispatcher_fps", "minimal dispatcher"),
                       ("video_batched_dispatcher_fps", "batched dispatcher"),
                       ("video_worker_stages_fps", "stages alone in workers")):
        found = floors.get(key)
        if found:
            floor_text += f"; {_fmt(found['median'])} {label}"
            if own:
                versus_floor += f"; {own / found['median']:.0%} of {label}"
    return floor_text, versus_floor


def _paced_floor(summary: dict[str, dict], floors: dict, own: float | None) -> tuple[str, str]:
    """The paced row's floor cells: how much slower this machine runs pure Python right after a
    sleep than back to back (`floors.python_us`), next to how much more a paced task costs
    ownrun's driver than one in a burst."""
    burst, paced = floors.get("python_burst_us"), floors.get("python_paced_us")
    if not (burst and paced):
        return "—", ""
    python = paced["median"] / burst["median"]
    floor_text = f"pure Python {_fmt(burst['median'])} µs, {_fmt(paced['median'])} after " \
                 f"sleeping {bodies.PACE_S * 1e3:g} ms ({python:.2g}×)"
    own_burst = summary.get("ownrun", {}).get("burst_task_cpu")
    if not (own and own_burst):
        return floor_text, ""
    return floor_text, f"{own / own_burst['median']:.2g}× its burst CPU (Python {python:.2g}×)"


def table_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The comparison as rows of cells (strings), for the terminal and the README: one per
    row spec measured, and one per latency row measured under background load."""
    summary, columns = document["summary"], document["columns"]
    floors = summary.get(FLOORS, {})
    busy = document.get("background_load") or 0
    out = []
    for spec in ROWS:
        for suffix in ("", LOAD_SUFFIX):
            key = spec.key + suffix
            if suffix and not busy:
                continue
            cells = {c: summary.get(c, {}).get(key) for c in columns}
            if not any(cells.values()):
                continue
            floor_key = (spec.floor + suffix) if spec.floor else None
            floor = floors.get(floor_key) if floor_key else None
            if floor is None and floor_key and suffix:
                floor = floors.get(spec.floor)
            label = spec.label + (f", {busy} busy loop{'s' if busy > 1 else ''}" if suffix
                                  else "")

            def cell(found: dict | None, column: str) -> str:
                if not document["systems"][column]["available"]:
                    return "not importable"
                if not found:
                    return "—"
                text = _fmt(found["median"])
                if found["max"] > found["min"] * 1.2 and len(found["rounds"]) > 1:
                    text += f" ({_fmt(found['min'])}–{_fmt(found['max'])})"
                return text

            own = (cells.get("ownrun") or {}).get("median")
            ray = (cells.get("ray") or {}).get("median")
            floor_text = _fmt(floor["median"]) if floor else "—"
            fresh = floors.get(spec.floor.replace("warm", "fresh")) if spec.floor else None
            if fresh and "memcpy_warm" in spec.floor:
                floor_text += f" warm memcpy / {_fmt(fresh['median'])} fresh pages"
            versus_floor = vs_floor(spec, own, floor["median"] if floor else None)
            if spec.key == "video_batch":
                floor_text, versus_floor = _pipeline_floors(document, floors, floor_text,
                                                            versus_floor, own)
            elif spec.key == "paced_task_cpu":
                floor_text, versus_floor = _paced_floor(summary, floors, own)
            out.append({"key": key, "bench": label, "unit": spec.unit,
                        **{c: cell(cells[c], c) for c in columns},
                        "floor": floor_text,
                        "ownrun vs Ray": vs_other(spec, own, ray),
                        "ownrun vs floor": versus_floor})
    return out


def render(document: dict[str, Any]) -> Table:
    columns = document["columns"]
    table = Table(title=f"ownrun vs {', '.join(columns[1:]) or 'the floors'}: median of "
                        f"{document['config']['rounds']} interleaved rounds (range when it "
                        f"spreads over 20%)", title_justify="left")
    headers = ["bench", "unit", *columns, "floor", "ownrun vs Ray", "ownrun vs floor"]
    for h in headers:
        table.add_column(h, justify="left" if h in ("bench", "unit") else "right",
                         no_wrap=True)
    for r in table_rows(document):
        table.add_row(*[r[h] for h in headers])
    return table


def _parse_with(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in systems.NAMES]
    if unknown:
        raise SystemExit(f"error: unknown system(s) {', '.join(unknown)}; "
                         f"--with takes {', '.join(systems.NAMES[1:])}")
    return names


def main(argv: list[str] | None = None, console: Console | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with", dest="with_", default="",
                        help="comma-separated systems besides ownrun: ray, dask")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny counts, for smoke tests")
    parser.add_argument("--rows", default=",".join(s.key for s in ROWS),
                        help="comma-separated row keys: " + ", ".join(s.key for s in ROWS))
    parser.add_argument("--background-load", type=int, default=0, metavar="N",
                        help="also measure the latency rows with N busy-loop processes")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1,
                        help="CPUs each system is started with (default: all)")
    parser.add_argument("--no-floors", action="store_true", help="skip the machine's floors")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "compare.json")
    parser.add_argument("--child-timeout", type=float, default=1800.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    keys = {k for k in args.rows.split(",") if k}
    if keys - set(BY_KEY):
        parser.error(f"unknown row(s): {', '.join(sorted(keys - set(BY_KEY)))}")
    if args.child:
        return child(args.child, args.child_out, args.quick, keys, args.background_load)

    console = console or Console(width=None if sys.stdout.isatty() else 200)
    run = meta.Run("compare", args.background_load)
    wanted = _columns(_parse_with(args.with_))
    status: dict[str, dict[str, Any]] = {}
    for name in wanted:
        version, why = systems.availability(name)
        status[name] = {"available": why is None, "version": version, "why": why}
        if why:
            console.print(f"[yellow]{name}: not measured[/] — {escape(why)}. Its column says "
                          f"so; to measure it, install it in a separate venv (ownrun never "
                          f"depends on it): {escape(systems.INSTALL_HINT)}")
        else:
            console.print(f"{name} {version}: measured")
    measured = [n for n in wanted if status[n]["available"]]
    children = measured + ([] if args.no_floors else [FLOORS])
    rounds: list[dict[str, dict]] = []
    for r in range(args.rounds):
        order = children[r % len(children):] + children[:r % len(children)]  # interleave
        one: dict[str, dict] = {}
        for name in order:
            with console.status(f"round {r + 1}/{args.rounds}: {name}"):
                started = time.perf_counter()
                one[name] = _run_child(name, args, keys)
                one[name]["seconds"] = time.perf_counter() - started
            for where, error in one[name]["errors"].items():
                if where != "traceback":
                    console.print(f"[red]round {r + 1}, {name}, {where}:[/] {error}")
        rounds.append(one)
    document = run.document(
        {"rounds": args.rounds, "quick": args.quick, "rows": sorted(keys), "cpus": args.cpus},
        None, systems=status, columns=wanted, cpus=args.cpus, rounds=rounds,
        summary=summarize(rounds))
    document["results"] = table_rows(document)
    console.print(render(document))
    console.print(f"measured: {meta.describe(document)}")
    meta.write(document, args.json)
    console.print(f"results written to {args.json}")
    failed = any(k != "traceback" for one in rounds for res in one.values() for k in res["errors"])
    return 1 if failed else 0


if __name__ == "__main__":
    # Run the installed module: the systems' workers import the bodies by module name.
    from ownrun.benchmarks import compare as _installed

    sys.exit(_installed.main())
