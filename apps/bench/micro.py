"""Microbenchmarks of the engine's public API, with their targets and Ray's figures.

Owns: the benchmark bodies, running them in order against one embedded cluster, the
results table and the JSON file. Uses only `from ownrun import engine` (Ray Core's API),
so the same code would measure Ray after changing that import.
How it fails: every benchmark runs in its own try/except and a failure becomes an error
row; every `get` has a timeout, so an engine that hangs produces an error row, not a hang.
Not thread-safe (one run per process); `main()` starts the cluster and shuts it down
unless the caller had already initialized the engine.

Each benchmark takes a `Config` and returns rows (`dict`s, see `row()`); timings are the
median of `Config.repeat` runs after a warm-up call.
"""
import datetime
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from ownrun import engine
from ownrun.apps.bench import DEFAULT_JSON, procs
from rich.console import Console
from rich.markup import escape
from rich.table import Table

RAY = "Ray 2.60"  # the release the comparison figures were measured on
MiB = 2**20
Row = dict[str, Any]


@dataclass(frozen=True)
class Config:
    """Sizes of one run. `quick` divides counts by ~10 and drops the targets that only make
    sense at full size (totals, 100 MiB objects)."""

    quick: bool = False
    repeat: int = 3
    timeout_s: float = 300.0

    def count(self, full: int) -> int:
        return max(1, full // 10) if self.quick else full

    @property
    def big_bytes(self) -> int:
        return 10 * MiB if self.quick else 100 * MiB


@dataclass(frozen=True)
class Target:
    op: str  # "<", "<=" or ">="
    value: float

    def met(self, measured: float) -> bool:
        ops: dict[str, Callable[[float, float], bool]] = {
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">=": lambda a, b: a >= b,
        }
        return ops[self.op](measured, self.value)

    def __str__(self) -> str:
        return f"{self.op.replace('<=', '≤').replace('>=', '≥')} {self.value:,g}"


class Skipped(Exception):
    """A benchmark (or part of one) that cannot run here; shown as a skipped row."""


def row(
    bench: str,
    value: float,
    unit: str,
    target: Target | None = None,
    ray: str | None = None,
    notes: str = "",
) -> Row:
    """One result; `met` is None when there is no target."""
    return {
        "bench": bench,
        "status": "ok",
        "value": value,
        "unit": unit,
        "target": str(target) if target else None,
        "met": target.met(value) if target else None,
        "ray": ray,
        "notes": notes,
    }


def failed_row(bench: str, status: str, message: str) -> Row:
    return {"bench": bench, "status": status, "value": None, "unit": "", "target": None,
            "met": None, "ray": None, "notes": message}


# --- remote functions and actors ------------------------------------------------------
# Plain module-level definitions wrapped by `_remote()` after init: workers import them by
# reference from this module, and importing it never needs a running engine.

def _noop() -> None:
    return None


def _inc(x: int) -> int:
    return x + 1


def _parent(children: int) -> int:
    engine.get([_remote().noop.remote() for _ in range(children)])
    return children


def _total(array: np.ndarray) -> float:
    return float(array.sum())


class _Counter:
    def __init__(self) -> None:
        self.calls = 0

    def inc(self) -> int:
        self.calls += 1
        return self.calls

    def pid(self) -> int:
        return os.getpid()


@functools.cache
def _remote() -> SimpleNamespace:
    return SimpleNamespace(
        noop=engine.remote(_noop),
        inc=engine.remote(_inc),
        parent=engine.remote(_parent),
        total=engine.remote(_total),
        Counter=engine.remote(num_cpus=0)(_Counter),
    )


def _median_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- benchmarks -----------------------------------------------------------------------

def bench_init(cfg: Config) -> list[Row]:
    """Wall time of init(); process count and memory of the idle cluster after a no-op task."""
    if engine.is_initialized():
        raise Skipped("the engine was already initialized by the caller")
    start = time.perf_counter()
    engine.init()
    rows = [row("init: wall time", time.perf_counter() - start, "s",
                Target("<=", 0.8), "2.4")]
    engine.get(_remote().noop.remote(), timeout=cfg.timeout_s)
    if not procs.AVAILABLE:
        return [*rows, failed_row("init: idle cluster memory", "skipped", procs.MISSING)]
    mem = procs.settled_tree()
    rows.append(row("init: idle processes", mem.processes, "procs", ray="10",
                    notes="driver + descendants"))
    rows.append(row("init: idle RSS, summed", mem.rss / MiB, "MiB", Target("<=", 250), "736",
                    "shared pages counted per process"))
    if mem.pss is not None:
        rows.append(row("init: idle PSS, summed", mem.pss / MiB, "MiB",
                        notes="shared pages split"))
    return rows


def bench_sequential_tasks(cfg: Config) -> list[Row]:
    noop, n = _remote().noop, cfg.count(1000)
    engine.get(noop.remote(), timeout=cfg.timeout_s)

    def run() -> None:
        for _ in range(n):
            engine.get(noop.remote(), timeout=cfg.timeout_s)

    seconds = _median_seconds(run, cfg.repeat)
    return [row(f"{n:,} sequential tasks", seconds / n * 1e3, "ms/task",
                Target("<=", 0.4), "2.18")]


def bench_task_throughput(cfg: Config) -> list[Row]:
    noop, n = _remote().noop, cfg.count(10_000)
    engine.get(noop.remote(), timeout=cfg.timeout_s)
    seconds = _median_seconds(
        lambda: engine.get([noop.remote() for _ in range(n)], timeout=cfg.timeout_s), cfg.repeat
    )
    return [row(f"{n:,} tasks, one get", n / seconds, "tasks/s",
                Target(">=", 6000), "1,750")]


def bench_nested_tasks(cfg: Config) -> list[Row]:
    remote, parents, children = _remote(), cfg.count(100), 100
    engine.get(remote.parent.remote(1), timeout=cfg.timeout_s)
    seconds = _median_seconds(
        lambda: engine.get([remote.parent.remote(children) for _ in range(parents)],
                           timeout=cfg.timeout_s),
        cfg.repeat,
    )
    tasks = parents * (children + 1)
    return [row(f"{parents}x{children} nested tasks", tasks / seconds,
                "tasks/s", Target(">=", 4000), "1,550", "parents + children")]


def bench_chain(cfg: Config) -> list[Row]:
    inc, n = _remote().inc, cfg.count(1000)
    engine.get(inc.remote(0), timeout=cfg.timeout_s)

    def run() -> None:
        ref = inc.remote(0)
        for _ in range(n - 1):
            ref = inc.remote(ref)
        result = engine.get(ref, timeout=cfg.timeout_s)
        if result != n:
            raise AssertionError(f"chain of {n} returned {result}")

    seconds = _median_seconds(run, cfg.repeat)
    return [row(f"chain of {n:,} tasks", n / seconds, "tasks/s",
                Target(">=", 2000), "620")]


def bench_put_get(cfg: Config) -> list[Row]:
    """put() bandwidth and get() latency of numpy arrays; deletes the ref between runs."""
    rows, reps = [], 3 if cfg.quick else 5
    for size in (MiB, cfg.big_bytes):
        array = np.arange(size // 8, dtype=np.float64)  # touches every page before timing
        puts, gets, read_only, aliased = [], [], [], []
        for _ in range(reps):
            start = time.perf_counter()
            ref = engine.put(array)
            put_done = time.perf_counter()
            out = engine.get(ref, timeout=cfg.timeout_s)
            gets.append(time.perf_counter() - put_done)
            puts.append(put_done - start)
            if out.shape != array.shape or out[-1] != array[-1]:
                raise AssertionError("get() returned a different array than was put()")
            read_only.append(not out.flags.writeable)
            aliased.append(np.shares_memory(out, array))
            del out, ref
        label, full = f"{size // MiB} MiB", size == 100 * MiB
        notes = "read-only (zero-copy)" if all(read_only) else "writable (a copy)"
        if any(aliased):
            notes += "; returned the put array itself"
        rows.append(row(f"put {label} array", size / statistics.median(puts) / 1e9,
                        "GB/s", Target(">=", 4) if full else None, "1.8" if full else None,
                        f"median of {reps}"))
        rows.append(row(f"get {label} array", statistics.median(gets) * 1e6, "µs",
                        Target("<", 1000) if full else None, "~115" if full else None, notes))
    return rows


def bench_pass_by_ref(cfg: Config) -> list[Row]:
    total, tasks = _remote().total, 10
    array = np.ones(cfg.big_bytes // 8, dtype=np.float64)
    expected = float(array.size)
    engine.get(total.remote(np.ones(8)), timeout=cfg.timeout_s)

    def run() -> None:
        ref = engine.put(array)
        sums = engine.get([total.remote(ref) for _ in range(tasks)], timeout=cfg.timeout_s)
        if any(s != expected for s in sums):
            raise AssertionError(f"tasks summed {sums[:3]}..., expected {expected}")
        del ref

    seconds = _median_seconds(run, cfg.repeat)
    return [row(f"{cfg.big_bytes // MiB} MiB by ref to {tasks} tasks",
                seconds * 1e3, "ms", notes="put once + tasks sum it")]


def bench_actor_calls(cfg: Config) -> list[Row]:
    n = cfg.count(10_000)
    actor = _remote().Counter.remote()
    try:
        engine.get(actor.inc.remote(), timeout=cfg.timeout_s)

        def one_at_a_time() -> None:
            for _ in range(n):
                engine.get(actor.inc.remote(), timeout=cfg.timeout_s)

        def all_at_once() -> None:
            values = engine.get([actor.inc.remote() for _ in range(n)], timeout=cfg.timeout_s)
            if values != list(range(values[0], values[0] + n)):
                raise AssertionError("actor calls from one caller ran out of order")

        sync = _median_seconds(one_at_a_time, cfg.repeat)
        batch = _median_seconds(all_at_once, cfg.repeat)
    finally:
        engine.kill(actor)
    return [
        row(f"{n:,} actor calls, sync", n / sync, "calls/s", Target(">=", 4000),
            "1,390"),
        row(f"{n:,} actor calls, batched", n / batch, "calls/s", Target(">=", 12000),
            "5,000", "all submitted, then get"),
    ]


def bench_many_actors(cfg: Config) -> list[Row]:
    """Create n actors, call each once (it returns its pid), measure, kill them all."""
    n = cfg.count(100)
    counter = _remote().Counter
    start = time.perf_counter()
    actors = [counter.remote() for _ in range(n)]
    try:
        pids = engine.get([a.pid.remote() for a in actors], timeout=cfg.timeout_s)
        seconds = time.perf_counter() - start
        rows = [row(f"{n} actors: create + call", seconds, "s",
                    None if cfg.quick else Target("<=", 2), "~37")]
        if procs.AVAILABLE:
            distinct = set(pids) - {os.getpid()}
            mem = procs.measure(distinct)
            if mem.pss is not None and mem.processes:
                rows.append(row("PSS per actor process", mem.pss / mem.processes / MiB,
                                "MiB", Target("<=", 40), "~125 (RSS)",
                                f"RSS {mem.rss / mem.processes / MiB:.0f} MiB; "
                                f"{len(distinct)} procs"))
        else:
            rows.append(failed_row("PSS per actor process", "skipped", procs.MISSING))
    finally:
        for actor in actors:
            engine.kill(actor)
    if procs.AVAILABLE:
        alive = procs.still_alive(set(pids) - {os.getpid()}, timeout_s=10)
        if alive:
            rows[0]["notes"] = f"{len(alive)} actor processes still alive 10 s after kill"
    return rows


BENCHMARKS: list[tuple[str, Callable[[Config], list[Row]]]] = [
    ("init", bench_init),
    ("sequential tasks", bench_sequential_tasks),
    ("task throughput", bench_task_throughput),
    ("nested tasks", bench_nested_tasks),
    ("task chain", bench_chain),
    ("put/get", bench_put_get),
    ("pass by ref", bench_pass_by_ref),
    ("actor calls", bench_actor_calls),
    ("many actors", bench_many_actors),
]


# --- running and reporting ------------------------------------------------------------

def _engine_up() -> bool:
    try:
        return bool(engine.is_initialized())
    except Exception:  # an engine without is_initialized() is not up
        return False


def _error(exc: BaseException) -> str:
    """One line: the first and last lines of the message (for a TaskError, "task f failed:"
    and the remote exception)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join([f"{type(exc).__name__}:", *lines[:1], *lines[1:][-1:]]).rstrip(":")


def run_all(cfg: Config, console: Console) -> list[Row]:
    """Run every benchmark in order; shut the cluster down if this run started it."""
    rows: list[Row] = []
    started_here = not _engine_up()
    try:
        for name, bench in BENCHMARKS:
            if bench is not bench_init and not _engine_up():
                rows.append(failed_row(name, "skipped", "engine not initialized"))
                continue
            with console.status(f"bench: {name}"):
                try:
                    rows.extend(bench(cfg))
                except Skipped as why:
                    rows.append(failed_row(name, "skipped", str(why)))
                except Exception as exc:
                    rows.append(failed_row(name, "error", _error(exc)))
    finally:
        if started_here and _engine_up():
            start = time.perf_counter()
            try:
                engine.shutdown()
                rows.append(row("shutdown: wall time",
                                time.perf_counter() - start, "s"))
            except Exception as exc:
                rows.append(failed_row("shutdown", "error", _error(exc)))
    return rows


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def render(rows: list[Row], cfg: Config) -> Table:
    title = "ownrun microbenchmarks" + (" (--quick: counts / 10)" if cfg.quick else "")
    table = Table(title=title, title_justify="left")
    for name, justify in [("bench", "left"), ("value", "right"), ("unit", "left"),
                          ("target", "right"), ("", "center"), (RAY, "right"),
                          ("notes", "left")]:
        wraps = name in ("bench", "notes")
        table.add_column(name, justify=justify, no_wrap=not wraps)  # type: ignore[arg-type]
    for r in rows:
        if r["status"] != "ok":
            style = "red" if r["status"] == "error" else "yellow"
            table.add_row(escape(r["bench"]), f"[{style}]{r['status']}[/]", "", "", "", "",
                          f"[{style}]{escape(r['notes'])}[/]")
            continue
        mark = {True: "[green]✓[/]", False: "[red]✗[/]", None: ""}[r["met"]]
        table.add_row(escape(r["bench"]), _fmt(r["value"]), r["unit"], r["target"] or "",
                      mark, r["ray"] or "", escape(r["notes"]))
    return table


def write_json(rows: list[Row], cfg: Config, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": asdict(cfg),
        "host": {"nproc": os.cpu_count(), "python": platform.python_version(),
                 "platform": platform.platform(), "argv": sys.argv},
        "results": rows,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def main(quick: bool = False, json_path: Path | str | None = DEFAULT_JSON,
         console: Console | None = None) -> int:
    """Run the microbenchmarks, print the table, write JSON (unless `json_path` is None).
    Returns 1 if any benchmark errored, else 0 (missed targets do not fail the run)."""
    console = console or Console()
    cfg = Config(quick=quick, repeat=1 if quick else 3, timeout_s=60.0 if quick else 300.0)
    rows = run_all(cfg, console)
    console.print(render(rows, cfg))
    if json_path is not None:
        write_json(rows, cfg, Path(json_path))
        console.print(f"results written to {json_path}")
    errors = [r["bench"] for r in rows if r["status"] == "error"]
    if errors:
        console.print(f"[red]{len(errors)} benchmark(s) failed:[/] {escape(', '.join(errors))}")
    return 1 if errors else 0
