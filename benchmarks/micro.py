"""Microbenchmarks of the engine's public API, with their targets (`ownrun bench`).

    python benchmarks/micro.py [--quick] [--background-load N] [--json PATH]

Owns: the benchmark bodies, running them in order against one embedded cluster, the
results table and the JSON file (benchmarks/results/micro.json when run as a script,
bench-results/micro.json from `ownrun bench`). Uses only `from ownrun import engine`
(Ray Core's API); Ray's figures are not here but in `compare` (benchmarks/compare.py), which
runs the same kind of bodies through Ray when it is importable.
How it fails: every benchmark runs in its own try/except and a failure becomes an error
row; every `get` has a timeout, so an engine that hangs produces an error row, not a hang.
Not thread-safe (one run per process); `main()` starts the cluster and shuts it down
unless the caller had already initialized the engine.

Each benchmark takes a `Config` and returns rows (`dict`s, see `row()`); timings are the
median of `Config.repeat` rounds after a warm-up call, as an outside harness measures them,
and each row keeps every round's value (`rounds`). With `background_load` N, the latency
benchmarks (`LATENCY`) run a second time with N busy-loop processes on the machine.
"""
import argparse
import functools
import os
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
from ownrun.benchmarks import DEFAULT_JSON, RESULTS_DIR, meta, procs
from ownrun.benchmarks.load import BackgroundLoad
from rich.console import Console
from rich.markup import escape
from rich.table import Table

MiB = 2**20
Row = dict[str, Any]


@dataclass(frozen=True)
class Config:
    """Sizes of one run. `quick` divides counts by ~10 and drops the targets that only make
    sense at full size (totals, 100 MiB objects)."""

    quick: bool = False
    repeat: int = 3
    timeout_s: float = 300.0
    background_load: int = 0  # busy-loop processes during a second pass of the latency rows

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
    reference: str | None = None,
    notes: str = "",
    rounds: list[float] | None = None,
) -> Row:
    """One result; `met` is None when there is no target. `reference` is a figure to
    compare with (the cluster suite's paper figures); `rounds` every round's value, in `unit`,
    of which `value` is the median."""
    return {
        "bench": bench,
        "status": "ok",
        "value": value,
        "unit": unit,
        "target": str(target) if target else None,
        "met": target.met(value) if target else None,
        "reference": reference,
        "notes": notes,
        "rounds": rounds,
    }


def timed_row(bench: str, seconds: list[float], unit: str, per: Callable[[float], float],
              target: Target | None = None, notes: str = "") -> Row:
    """A row whose value is the median of `per(s)` over the rounds' `seconds`; the notes
    say how many rounds and their spread."""
    values = [per(s) for s in seconds]
    median = statistics.median(values)
    spread = (f"median of {len(values)} ({_fmt(min(values))}–{_fmt(max(values))})"
              if len(values) > 1 else "1 round")
    return row(bench, median, unit, target, notes="; ".join(filter(None, [notes, spread])),
               rounds=values)


def failed_row(bench: str, status: str, message: str) -> Row:
    return {"bench": bench, "status": status, "value": None, "unit": "", "target": None,
            "met": None, "reference": None, "notes": message, "rounds": None}


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


def _window_mean(*window: int) -> float:
    return sum(window) / len(window)


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
        window_mean=engine.remote(_window_mean),
        Counter=engine.remote(num_cpus=0)(_Counter),
    )


def rounds_seconds(run: Callable[[], object], repeat: int) -> list[float]:
    """Wall time of each of `repeat` calls of `run`."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def _median_seconds(run: Callable[[], object], repeat: int) -> float:
    return statistics.median(rounds_seconds(run, repeat))


# --- benchmarks -----------------------------------------------------------------------

def bench_init(cfg: Config) -> list[Row]:
    """Wall time of init(); process count and memory of the idle cluster after a no-op task.
    One measurement (init runs once per run)."""
    if engine.is_initialized():
        raise Skipped("the engine was already initialized by the caller")
    start = time.perf_counter()
    engine.init()
    rows = [row("init: wall time", time.perf_counter() - start, "s", Target("<=", 0.8),
                notes="1 round")]
    engine.get(_remote().noop.remote(), timeout=cfg.timeout_s)
    if not procs.AVAILABLE:
        return [*rows, failed_row("init: idle cluster memory", "skipped", procs.MISSING)]
    mem = procs.settled_tree()
    rows.append(row("init: idle processes", mem.processes, "procs",
                    notes="driver + descendants"))
    rows.append(row("init: idle RSS, summed", mem.rss / MiB, "MiB", Target("<=", 250),
                    notes="shared pages counted per process"))
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

    return [timed_row(f"{n:,} sequential tasks", rounds_seconds(run, cfg.repeat), "ms/task",
                      lambda s: s / n * 1e3, Target("<=", 0.4))]


def bench_task_throughput(cfg: Config) -> list[Row]:
    noop, n = _remote().noop, cfg.count(10_000)
    engine.get(noop.remote(), timeout=cfg.timeout_s)
    seconds = rounds_seconds(
        lambda: engine.get([noop.remote() for _ in range(n)], timeout=cfg.timeout_s), cfg.repeat
    )
    return [timed_row(f"{n:,} tasks, one get", seconds, "tasks/s", lambda s: n / s,
                      Target(">=", 6000))]


def bench_nested_tasks(cfg: Config) -> list[Row]:
    remote, parents, children = _remote(), cfg.count(100), 100
    engine.get(remote.parent.remote(1), timeout=cfg.timeout_s)
    seconds = rounds_seconds(
        lambda: engine.get([remote.parent.remote(children) for _ in range(parents)],
                           timeout=cfg.timeout_s),
        cfg.repeat,
    )
    tasks = parents * (children + 1)
    return [timed_row(f"{parents}x{children} nested tasks", seconds, "tasks/s",
                      lambda s: tasks / s, Target(">=", 4000), "parents + children")]


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

    return [timed_row(f"chain of {n:,} tasks", rounds_seconds(run, cfg.repeat), "tasks/s",
                      lambda s: n / s, Target(">=", 2000))]


WINDOW = 201  # refs per task: the video pipeline's smoothing window at 100 fps (2 * fps + 1)


def bench_window_tasks(cfg: Config) -> list[Row]:
    """Tasks each taking a sliding window of WINDOW refs to small task results (the video
    pipeline's smooth task): the per-argument cost of submitting, resolving and decoding."""
    remote, n = _remote(), cfg.count(1000)
    values = [remote.inc.remote(i) for i in range(n + WINDOW)]
    engine.get(values, timeout=cfg.timeout_s)
    engine.get(remote.window_mean.remote(*values[:WINDOW]), timeout=cfg.timeout_s)

    def run() -> None:
        means = engine.get([remote.window_mean.remote(*values[i:i + WINDOW]) for i in range(n)],
                           timeout=cfg.timeout_s)
        if means[0] != (1 + WINDOW) / 2:
            raise AssertionError(f"window mean {means[0]}, expected {(1 + WINDOW) / 2}")

    return [timed_row(f"{n:,} tasks of {WINDOW} ref args", rounds_seconds(run, cfg.repeat), "tasks/s",
                      lambda s: n / s, notes="a smoothing window at 100 fps")]


def bench_put_get(cfg: Config) -> list[Row]:
    """put() bandwidth and get() latency of numpy arrays after one untimed put and get;
    deletes the ref between runs."""
    rows = []
    for size, reps in ((MiB, 3 if cfg.quick else 20), (cfg.big_bytes, 3 if cfg.quick else 5)):
        array = np.arange(size // 8, dtype=np.float64)  # touches every page before timing
        puts, gets, read_only, aliased = [], [], [], []
        engine.get(engine.put(array), timeout=cfg.timeout_s)  # warm-up, not timed
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
        rows.append(timed_row(f"put {label} array", puts, "GB/s", lambda s, n=size: n / s / 1e9,
                              Target(">=", 4) if full else None))
        rows.append(timed_row(f"get {label} array", gets, "µs", lambda s: s * 1e6,
                              Target("<", 1000) if full else None, notes))
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

    return [timed_row(f"{cfg.big_bytes // MiB} MiB by ref to {tasks} tasks",
                      rounds_seconds(run, cfg.repeat), "ms", lambda s: s * 1e3,
                      notes="put once + tasks sum it")]


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

        sync = rounds_seconds(one_at_a_time, cfg.repeat)
        batch = rounds_seconds(all_at_once, cfg.repeat)
    finally:
        engine.kill(actor)
    return [
        timed_row(f"{n:,} actor calls, sync", sync, "calls/s", lambda s: n / s,
                  Target(">=", 4000)),
        timed_row(f"{n:,} actor calls, batched", batch, "calls/s", lambda s: n / s,
                  Target(">=", 12000), "all submitted, then get"),
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
                    None if cfg.quick else Target("<=", 2), notes="1 round")]
        if procs.AVAILABLE:
            distinct = set(pids) - {os.getpid()}
            mem = procs.measure(distinct)
            if mem.pss is not None and mem.processes:
                rows.append(row("PSS per actor process", mem.pss / mem.processes / MiB,
                                "MiB", Target("<=", 40),
                                notes=f"RSS {mem.rss / mem.processes / MiB:.0f} MiB; "
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
    ("window tasks", bench_window_tasks),
    ("put/get", bench_put_get),
    ("pass by ref", bench_pass_by_ref),
    ("actor calls", bench_actor_calls),
    ("many actors", bench_many_actors),
]
LATENCY = {"sequential tasks", "actor calls"}  # run again under --background-load N


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


def _run_one(name: str, bench: Callable[[Config], list[Row]], cfg: Config,
             console: Console, busy: int = 0) -> list[Row]:
    """The rows of one benchmark (an error or skipped row if it fails); with `busy`, run
    with that many busy-loop processes and mark the rows."""
    label = f"{name} (with {busy} busy-loop processes)" if busy else name
    with console.status(f"bench: {label}"):
        try:
            if busy:
                with BackgroundLoad(busy):
                    rows = bench(cfg)
            else:
                rows = bench(cfg)
        except Skipped as why:
            rows = [failed_row(name, "skipped", str(why))]
        except Exception as exc:
            rows = [failed_row(name, "error", _error(exc))]
    for r in rows:
        r["background_load"] = busy
        if busy:
            r["bench"] += f", {busy} busy loop{'' if busy == 1 else 's'}"
    return rows


def run_all(cfg: Config, console: Console, only: set[str] | None = None) -> list[Row]:
    """Run every benchmark (or those named in `only`; init always runs) in order, the
    latency ones again under `cfg.background_load`; shut the cluster down if this run
    started it."""
    rows: list[Row] = []
    started_here = not _engine_up()
    try:
        for name, bench in BENCHMARKS:
            if only is not None and name not in only and bench is not bench_init:
                continue
            if bench is not bench_init and not _engine_up():
                rows.append(failed_row(name, "skipped", "engine not initialized"))
                continue
            rows.extend(_run_one(name, bench, cfg, console))
            if cfg.background_load and name in LATENCY:
                rows.extend(_run_one(name, bench, cfg, console, cfg.background_load))
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


def render(rows: list[Row], cfg: Config, reference: str | None = None) -> Table:
    """The results table; a `reference` column (named so) when the rows carry one."""
    title = "ownrun microbenchmarks" + (" (--quick: counts / 10)" if cfg.quick else "")
    table = Table(title=title, title_justify="left")
    columns = [("bench", "left"), ("value", "right"), ("unit", "left"), ("target", "right"),
               ("", "center")] + ([(reference, "right")] if reference else []) + \
        [("notes", "left")]
    for name, justify in columns:
        wraps = name in ("bench", "notes")
        table.add_column(name, justify=justify, no_wrap=not wraps)  # type: ignore[arg-type]
    ref_cells = (lambda r: [r.get("reference") or ""]) if reference else (lambda r: [])
    for r in rows:
        if r["status"] != "ok":
            style = "red" if r["status"] == "error" else "yellow"
            table.add_row(escape(r["bench"]), f"[{style}]{r['status']}[/]", "", "", "",
                          *([""] if reference else []), f"[{style}]{escape(r['notes'])}[/]")
            continue
        mark = {True: "[green]✓[/]", False: "[red]✗[/]", None: ""}[r["met"]]
        table.add_row(escape(r["bench"]), _fmt(r["value"]), r["unit"], r["target"] or "",
                      mark, *ref_cells(r), escape(r["notes"]))
    return table


def write_json(rows: list[Row], cfg: Config, path: Path, run: meta.Run | None = None,
               benchmark: str = "micro") -> None:
    run = run or meta.Run(benchmark, cfg.background_load)
    meta.write(run.document(asdict(cfg), rows), path)


def main(quick: bool = False, json_path: Path | str | None = DEFAULT_JSON,
         console: Console | None = None, background_load: int = 0,
         only: set[str] | None = None) -> int:
    """Run the microbenchmarks, print the table, write JSON (unless `json_path` is None).
    Returns 1 if any benchmark errored, else 0 (missed targets do not fail the run)."""
    console = console or Console()
    cfg = Config(quick=quick, repeat=1 if quick else 3, timeout_s=60.0 if quick else 300.0,
                 background_load=background_load)
    run = meta.Run("micro", background_load)
    rows = run_all(cfg, console, only)
    console.print(render(rows, cfg))
    if json_path is not None:
        write_json(rows, cfg, Path(json_path), run)
        console.print(f"results written to {json_path}")
    errors = [r["bench"] for r in rows if r["status"] == "error"]
    if errors:
        console.print(f"[red]{len(errors)} benchmark(s) failed:[/] {escape(', '.join(errors))}")
    return 1 if errors else 0


def cli(argv: list[str] | None = None) -> int:
    """`python benchmarks/micro.py`: writes benchmarks/results/micro.json by default."""
    parser = argparse.ArgumentParser(description="ownrun's API microbenchmarks")
    parser.add_argument("--quick", action="store_true", help="about 10x smaller counts")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "micro.json")
    parser.add_argument("--background-load", type=int, default=0, metavar="N",
                        help="also run the latency rows with N busy-loop processes")
    parser.add_argument("--only", default=None,
                        help="comma-separated benchmark names: " +
                             ", ".join(name for name, _ in BENCHMARKS))
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    return main(quick=args.quick, json_path=args.json, background_load=args.background_load,
                only=only)


if __name__ == "__main__":
    # Run the installed module, not this file as __main__: workers import the remote
    # functions by their module name, ownrun.benchmarks.micro.
    from ownrun.benchmarks import micro as _installed

    sys.exit(_installed.cli())
