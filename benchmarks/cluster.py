"""The ownership paper's cluster microbenchmarks (PAPER.md §2.1–2.4), scaled to one machine.

Owns: four benchmarks that compare the engine's experiment modes (DESIGN.md §7) on embedded
clusters: per-task latency with a 1 MiB argument passed by reference (ownership, centralized,
pass-by-value; local and remote), submission throughput with 0, 1 and 2 borrowers of that
argument, the job time of a task chain that loses a node halfway, and throughput with 1 and 2
owners. Prints one table per benchmark and a summary, and writes bench-results/cluster.json
(`ownrun bench --suite cluster`) or benchmarks/results/cluster.json (`python
benchmarks/cluster.py [--quick]`).
Does not: define the table, row or JSON formats; those are `ownrun.benchmarks.micro`'s.
Uses only the public API (`from ownrun import engine`, `engine.cluster`), plus
`engine.debug.owner_stats()` to report how many objects recovery reconstructed.

How it fails: each benchmark starts and shuts down its own clusters (one per system and
setup), every variant runs in its own try/except, so a failure becomes an error row and the
other variants still run; every `get` has a timeout. A recovery chain that makes no progress
after its node is killed is reported as stalled (an error row) within seconds, and the run is
repeated with the driver holding a ref to every link's output, labelled "(refs held)".
Not thread-safe (one run per process); refuses to run (skipped rows) if the caller already
initialized the engine.
"""
import argparse
import collections
import contextlib
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from ownrun import engine
from ownrun.benchmarks import RESULTS_DIR, meta, micro
from ownrun.benchmarks.micro import Config, Row, Skipped, failed_row, row
from ownrun.engine import cluster, debug
from rich.console import Console
from rich.markup import escape
from rich.table import Table

DEFAULT_JSON = Path("bench-results/cluster.json")
MiB = 2**20
WORKER = {"w": 1}  # the custom resource of added nodes: forces a task onto them
SYSTEMS: dict[str, dict] = {  # engine.init() arguments of each system the paper compares
    "ownership": {"metadata": "ownership"},
    "centralized": {"metadata": "centralized"},
    "by-value": {"inline_threshold": 2**40},
}
RECOVERY_DELAY_S = 0.1  # the sleep of each chain task
NODE_DEATH_TIMEOUT_S = 1.0  # the paper's 1 s failure detection


# --- remote functions -----------------------------------------------------------------
# Module-level definitions wrapped by `_remote()`: workers import them from this module.

def _noop(dep: np.ndarray) -> None:
    return None


def _ok(dep: np.ndarray) -> bytes:
    return b"ok"


def _hi() -> bytes:
    return b"hi"


def _borrower(boxed: list, n: int, timeout_s: float) -> int:
    """Borrows the ref inside `boxed` and owns `n` tasks that take it as their argument."""
    dep = boxed[0]
    engine.get([_remote().ok.remote(dep) for _ in range(n)], timeout=timeout_s)
    return n


def _owner(n: int, timeout_s: float) -> int:
    engine.get([_remote().hi.remote() for _ in range(n)], timeout=timeout_s)
    return n


def _node_id() -> str:
    return engine.get_runtime_context().node_id


def _source(nbytes: int) -> int | np.ndarray:
    """The head of the recovery chain: 0, or an array of zeros of `nbytes`."""
    return np.zeros(nbytes // 8) if nbytes else 0


def _link(value: int | np.ndarray, delay_s: float) -> tuple[int | np.ndarray, str]:
    """One link of the recovery chain: its input plus one, and the node that ran it."""
    time.sleep(delay_s)
    return value + 1, engine.get_runtime_context().node_id


@functools.cache
def _remote() -> SimpleNamespace:
    return SimpleNamespace(
        noop=engine.remote(_noop),
        ok=engine.remote(_ok),
        hi=engine.remote(_hi),
        borrower=engine.remote(num_cpus=0)(_borrower),
        owner=engine.remote(num_cpus=0)(_owner),
        node_id=engine.remote(num_cpus=0, resources=WORKER)(_node_id),
        source=engine.remote(resources=WORKER)(_source),
        link=engine.remote(num_returns=2, resources=WORKER)(_link),
    )


# --- helpers --------------------------------------------------------------------------

@contextlib.contextmanager
def _session(**init_kwargs) -> Iterator[None]:
    """An embedded cluster for one variant, shut down however the variant ends."""
    engine.init(**init_kwargs)
    try:
        yield
    finally:
        engine.shutdown()


def _add_worker_nodes(count: int, timeout_s: float) -> list[str]:
    """Adds `count` nodes with one CPU and the WORKER resource; returns once a WORKER task
    can be scheduled. (add_node returns when the head knows the node; the driver's node
    learns of it from its next heartbeat, and until then rejects WORKER tasks as infeasible.)"""
    nodes = [cluster.add_node(num_cpus=1, resources=WORKER) for _ in range(count)]
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            engine.get(_remote().node_id.remote(), timeout=timeout_s)
            return nodes
        except engine.EngineError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _owner_counters() -> collections.Counter:
    """The driver's task retries and reconstructions so far."""
    stats = debug.owner_stats()
    return collections.Counter({"task_retries": stats["retries"],
                                "reconstructions": stats["reconstructions"]})


def _attempt(label: str, measure: Callable[[], list[Row]]) -> list[Row]:
    """The rows of `measure()`, or one error row named `label`."""
    try:
        return measure()
    except Skipped as why:
        return [failed_row(label, "skipped", str(why))]
    except Exception as exc:
        return [failed_row(label, "error", micro._error(exc))]


def _paper(value: float | None) -> str | None:
    return None if value is None else f"{value:,g}"


# --- (1) latency ----------------------------------------------------------------------
# ms per task, PAPER.md §2.1 (m5.8xlarge): (placement, system) -> figure.
PAPER_LATENCY_MS = {
    ("local", "ownership"): 0.28, ("local", "centralized"): 0.39, ("local", "by-value"): 1.31,
    ("remote", "ownership"): 0.25, ("remote", "centralized"): 0.46, ("remote", "by-value"): 2.03,
}


def _latency_ms(cfg: Config, n: int, system: str, placement: str) -> float:
    """Median ms per task of `n` pipelined no-op tasks on one worker, each taking the same
    1 MiB put object; "remote" runs them on a second node (the driver's node has no CPUs)."""
    noop = _remote().noop
    local = placement == "local"
    with _session(num_cpus=1 if local else 0, **SYSTEMS[system]):
        if not local:
            _add_worker_nodes(1, cfg.timeout_s)
            noop = noop.options(resources=WORKER)
        dep = engine.put(np.ones(MiB // 8))
        engine.get([noop.remote(dep) for _ in range(10)], timeout=cfg.timeout_s)  # warm-up
        seconds = micro._median_seconds(
            lambda: engine.get([noop.remote(dep) for _ in range(n)], timeout=cfg.timeout_s),
            cfg.repeat)
    return seconds / n * 1e3


def bench_latency(cfg: Config) -> list[Row]:
    n, rows = cfg.count(1000), []
    for placement in ("local", "remote"):
        for system in SYSTEMS:
            label = f"latency: {placement}, {system}"
            rows += _attempt(label, lambda p=placement, s=system, label=label: [
                row(label, _latency_ms(cfg, n, s, p), "ms/task",
                    reference=_paper(PAPER_LATENCY_MS[p, s]),
                    notes=f"{n:,} tasks, 1 MiB arg by ref, one worker; median of {cfg.repeat}"),
            ])
    return rows


# --- (2) borrowing --------------------------------------------------------------------
PAPER_BORROW_TASKS_S = {  # tasks/s, PAPER.md §2.4 (64 vCPU): (system, borrowers) -> figure
    ("ownership", 0): 12_208, ("ownership", 1): 11_987, ("ownership", 2): 21_675,
    ("centralized", 0): 5_506, ("centralized", 1): 5_102, ("centralized", 2): 5_192,
}
BORROWERS = (0, 1, 2)


def _borrow_round(dep: engine.ObjectRef, n: int, borrowers: int, timeout_s: float) -> None:
    """`n` tasks on `dep`: submitted by the driver, or split among `borrowers` tasks."""
    remote = _remote()
    if borrowers == 0:
        engine.get([remote.ok.remote(dep) for _ in range(n)], timeout=timeout_s)
        return
    share = n // borrowers
    done = engine.get([remote.borrower.remote([dep], share, timeout_s) for _ in range(borrowers)],
                      timeout=timeout_s)
    if sum(done) != share * borrowers:
        raise AssertionError(f"borrowers ran {sum(done)} tasks, expected {share * borrowers}")


def _borrowing_rows(cfg: Config, system: str) -> list[Row]:
    n, rows = cfg.count(10_000), []
    with _session(num_cpus=2, **SYSTEMS[system]):
        dep = engine.put(np.ones(MiB // 8))
        for borrowers in BORROWERS:
            label = f"borrowing: {system}, {borrowers} borrower{'' if borrowers == 1 else 's'}"

            def measure(borrowers: int = borrowers, label: str = label) -> list[Row]:
                _borrow_round(dep, n // 10, borrowers, cfg.timeout_s)  # warm-up
                seconds = micro._median_seconds(
                    lambda: _borrow_round(dep, n, borrowers, cfg.timeout_s), cfg.repeat)
                submitter = "the driver" if borrowers == 0 else f"{borrowers} borrower task(s)"
                return [row(label, n / seconds, "tasks/s",
                            reference=_paper(PAPER_BORROW_TASKS_S[system, borrowers]),
                            notes=f"{n:,} tasks by {submitter}; median of {cfg.repeat}")]

            rows += _attempt(label, measure)
    return rows


def bench_borrowing(cfg: Config) -> list[Row]:
    rows = []
    for system in ("ownership", "centralized"):
        rows += _attempt(f"borrowing: {system}", lambda s=system: _borrowing_rows(cfg, s))
    return rows


# --- (3) recovery ---------------------------------------------------------------------
PAPER_RECOVERY = {"small": (11.3, 14.0), "1 MiB": (11.6, 20.1)}  # s, 100 ms tasks, §2.3
HELD = " (refs held)"  # the variant whose driver keeps a ref to every link's output


class ChainStalled(Exception):
    """No link of the chain finished for a while after the node was killed."""


class _NodeKiller(threading.Thread):
    """Waits `after_s` (and, on a busy machine, until a first link has finished, for up to
    `FIRST_LINK_S` more), then kills the node that ran the latest finished link of the chain
    (the nodes are read from the links' second returns) and records what it did."""

    FIRST_LINK_S = 60.0

    def __init__(self, after_s: float, node_refs: list, start: float):
        super().__init__(name="bench-node-killer", daemon=True)
        self.after_s, self.node_refs, self.start_time = after_s, node_refs, start
        self.victim: str | None = None
        self.killed_at_s: float | None = None
        self.links_done = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            time.sleep(max(0.0, self.start_time + self.after_s - time.perf_counter()))
            deadline = time.perf_counter() + self.FIRST_LINK_S
            while True:
                refs = list(self.node_refs)
                ready, _ = engine.wait(refs, num_returns=len(refs), timeout=0)
                done = set(ready)
                latest = max((i for i, ref in enumerate(refs) if ref in done), default=None)
                if latest is not None:
                    break
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"no link of the chain finished within "
                                       f"{self.after_s + self.FIRST_LINK_S:.1f} s")
                time.sleep(0.05)
            self.links_done = len(done)
            self.victim = engine.get(refs[latest], timeout=10)
            cluster.kill_node(self.victim)
            self.killed_at_s = time.perf_counter() - self.start_time
        except BaseException as exc:  # reported by the benchmark, not lost in this thread
            self.error = exc


@dataclass
class _Chain:
    """One run of the chain: its refs, its killer (if any) and the driver's counters."""

    links: int
    node_refs: list
    killer: _NodeKiller | None
    counters_before: collections.Counter
    start: float

    def counters(self) -> collections.Counter:
        delta = _owner_counters()
        delta.subtract(self.counters_before)
        return delta

    def finished_links(self) -> int:
        refs = list(self.node_refs)
        return len(engine.wait(refs, num_returns=len(refs), timeout=0)[0])

    def await_result(self, value: engine.ObjectRef, timeout_s: float, stall_s: float) -> None:
        """Returns once `value` is ready. Raises ChainStalled when no link finished for
        `stall_s` after the kill (an engine that never resumes the chain), TimeoutError
        after `timeout_s`, and whatever the killer raised."""
        killer, done, progressed = self.killer, 0, self.start
        while not engine.wait([value], num_returns=1, timeout=0.25)[0]:
            now = time.perf_counter()
            if killer is not None and killer.error is not None:
                raise killer.error
            finished = self.finished_links()
            if finished > done:
                done, progressed = finished, now
            if killer is not None and killer.killed_at_s is not None:
                quiet = now - max(progressed, self.start + killer.killed_at_s)
                if quiet > stall_s:
                    counts = self.counters()
                    raise ChainStalled(
                        f"the chain stalled: no link finished for {quiet:.0f} s after "
                        f"{killer.victim} was killed at {killer.killed_at_s:.1f} s; "
                        f"{done} of {self.links} links done, task retries "
                        f"{counts['task_retries']}, reconstructions {counts['reconstructions']}")
            if now - self.start > timeout_s:
                raise TimeoutError(f"the chain did not finish within {timeout_s:.0f} s "
                                   f"({done} of {self.links} links done)")


def _chain_run(nbytes: int, links: int, fail: bool, hold: bool, timeout_s: float) -> dict:
    """One chain on the driver's node (no CPUs) plus two worker nodes; returns its job time,
    the driver's counter deltas and, with `fail`, the killer. With `hold`, the driver keeps
    a ref to every link's output; otherwise only to the last, as in the paper."""
    remote = _remote()
    nominal_s = links * RECOVERY_DELAY_S
    with _session(num_cpus=0, node_death_timeout=NODE_DEATH_TIMEOUT_S):
        _add_worker_nodes(2, timeout_s)
        # warm-up: two concurrent links need both nodes, so each starts a worker
        engine.get([remote.link.remote(0, 0.2)[0] for _ in range(2)], timeout=timeout_s)
        node_refs: list = []
        held: list = []
        start = time.perf_counter()
        killer = _NodeKiller(nominal_s / 2, node_refs, start) if fail else None
        chain = _Chain(links, node_refs, killer, _owner_counters(), start)
        if killer is not None:
            killer.start()
        value = remote.source.remote(nbytes)
        for _ in range(links):
            value, node = remote.link.remote(value, RECOVERY_DELAY_S)
            node_refs.append(node)
            if hold:
                held.append(value)
        # After the kill, detection plus re-running the lost links (at most the first half
        # of the chain) pass before the next link finishes; 2 s more is a stall.
        chain.await_result(value, timeout_s, NODE_DEATH_TIMEOUT_S + nominal_s / 2 + 2)
        seconds = time.perf_counter() - start
        result = engine.get(value, timeout=timeout_s)
        if killer is not None:
            killer.join(timeout_s)
        last = result if nbytes == 0 else (result[0], result[-1])
        if last not in (links, (links, links)):
            raise AssertionError(f"a chain of {links} links returned {last}, expected {links}")
        counts = chain.counters()
    return {"seconds": seconds, "reconstructions": counts["reconstructions"],
            "retries": counts["task_retries"], "killer": killer}


def _failure_rows(name: str, base: dict, failed: dict, paper: tuple[float, float]) -> list[Row]:
    paper_base, paper_fail = paper
    killer = failed["killer"]
    return [
        row(f"{name}, node killed", failed["seconds"], "s", reference=_paper(paper_fail),
            notes=f"killed {killer.victim} at {killer.killed_at_s:.1f} s after "
                  f"{killer.links_done} links; detection at once (process exit; heartbeat "
                  f"timeout {NODE_DEATH_TIMEOUT_S:g} s)"),
        row(f"{name}, added time", failed["seconds"] - base["seconds"], "s",
            reference=_paper(round(paper_fail - paper_base, 1)),
            notes="node killed - no failure (below 0: within the two runs' noise)"),
        row(f"{name}, relative", failed["seconds"] / base["seconds"], "x",
            reference=_paper(round(paper_fail / paper_base, 2)), notes="node killed / no failure"),
        row(f"{name}, reconstructions", failed["reconstructions"], "objects",
            notes=f"task retries {failed['retries']}; without failure "
                  f"{base['reconstructions']} and {base['retries']}"),
    ]


def _recovery_rows(label: str, nbytes: int, links: int, timeout_s: float) -> list[Row]:
    """No failure, then a node killed halfway with the driver holding only the last ref (the
    paper's program); if that chain stalls, again with the driver holding every ref."""
    name = f"recovery: {label}"
    base = _chain_run(nbytes, links, fail=False, hold=False, timeout_s=timeout_s)
    rows = [row(f"{name}, no failure", base["seconds"], "s", reference=_paper(PAPER_RECOVERY[label][0]),
                notes=f"{links} links x {RECOVERY_DELAY_S * 1e3:.0f} ms; driver node has no CPUs")]
    try:
        failed = _chain_run(nbytes, links, fail=True, hold=False, timeout_s=timeout_s)
        return rows + _failure_rows(name, base, failed, PAPER_RECOVERY[label])
    except ChainStalled as exc:
        rows.append(failed_row(f"{name}, node killed", "error", micro._error(exc)))
    held = _chain_run(nbytes, links, fail=True, hold=True, timeout_s=timeout_s)
    return rows + _failure_rows(name + HELD, base, held, PAPER_RECOVERY[label])


def bench_recovery(cfg: Config) -> list[Row]:
    nominal_s = 3.0 if cfg.quick else 10.0
    links = round(nominal_s / RECOVERY_DELAY_S)
    timeout_s = 4 * nominal_s + 60
    rows = []
    for label, nbytes in (("small", 0), ("1 MiB", MiB)):
        rows += _attempt(f"recovery: {label}",
                         lambda lb=label, nb=nbytes: _recovery_rows(lb, nb, links, timeout_s))
    return rows


# --- (4) scaling ----------------------------------------------------------------------

OWNERS = (1, 2)


def _owners_round(owners: int, n: int, timeout_s: float) -> None:
    done = engine.get([_remote().owner.remote(n, timeout_s) for _ in range(owners)],
                      timeout=timeout_s)
    if sum(done) != owners * n:
        raise AssertionError(f"owners ran {sum(done)} tasks, expected {owners * n}")


def _scaling_rows(cfg: Config, system: str) -> list[Row]:
    n, rows = cfg.count(5_000), []
    with _session(num_cpus=2, **SYSTEMS[system]):
        for owners in OWNERS:
            label = f"scaling: {system}, {owners} owner{'' if owners == 1 else 's'}"

            def measure(owners: int = owners, label: str = label) -> list[Row]:
                _owners_round(owners, n // 10, cfg.timeout_s)  # warm-up
                seconds = micro._median_seconds(
                    lambda: _owners_round(owners, n, cfg.timeout_s), cfg.repeat)
                return [row(label, owners * n / seconds, "tasks/s",
                            notes=f"{owners} x {n:,} no-op tasks; median of {cfg.repeat}")]

            rows += _attempt(label, measure)
    return rows


def bench_scaling(cfg: Config) -> list[Row]:
    rows = []
    for system in ("ownership", "centralized"):
        rows += _attempt(f"scaling: {system}", lambda s=system: _scaling_rows(cfg, s))
    return rows


BENCHMARKS: list[tuple[str, Callable[[Config], list[Row]]]] = [
    ("latency", bench_latency),
    ("borrowing", bench_borrowing),
    ("recovery", bench_recovery),
    ("scaling", bench_scaling),
]


# --- summary --------------------------------------------------------------------------
# (label, numerator rows, denominator row, the paper's ratio or None); the first numerator
# row that was measured is used.
RATIOS: list[tuple[str, tuple[str, ...], str, float | None]] = [
    ("latency local: centralized / ownership", ("latency: local, centralized",),
     "latency: local, ownership", 0.39 / 0.28),
    ("latency local: by-value / ownership", ("latency: local, by-value",),
     "latency: local, ownership", 1.31 / 0.28),
    ("latency remote: centralized / ownership", ("latency: remote, centralized",),
     "latency: remote, ownership", 0.46 / 0.25),
    ("latency remote: by-value / ownership", ("latency: remote, by-value",),
     "latency: remote, ownership", 2.03 / 0.25),
    ("borrowing ownership: 2 borrowers / driver", ("borrowing: ownership, 2 borrowers",),
     "borrowing: ownership, 0 borrowers", 21_675 / 12_208),
    ("borrowing centralized: 2 borrowers / driver", ("borrowing: centralized, 2 borrowers",),
     "borrowing: centralized, 0 borrowers", 5_192 / 5_506),
    ("borrowing 2 borrowers: ownership / centralized", ("borrowing: ownership, 2 borrowers",),
     "borrowing: centralized, 2 borrowers", 21_675 / 5_192),
    ("recovery small: killed / no failure",
     ("recovery: small, node killed", f"recovery: small{HELD}, node killed"),
     "recovery: small, no failure", 14.0 / 11.3),
    ("recovery 1 MiB: killed / no failure",
     ("recovery: 1 MiB, node killed", f"recovery: 1 MiB{HELD}, node killed"),
     "recovery: 1 MiB, no failure", 20.1 / 11.6),
    ("scaling ownership: 2 owners / 1", ("scaling: ownership, 2 owners",),
     "scaling: ownership, 1 owner", None),
    ("scaling centralized: 2 owners / 1", ("scaling: centralized, 2 owners",),
     "scaling: centralized, 1 owner", None),
    ("scaling 2 owners: ownership / centralized", ("scaling: ownership, 2 owners",),
     "scaling: centralized, 2 owners", None),
]


def summarize(rows: list[Row], seconds: dict[str, float]) -> list[Row]:
    """Headline ratios computed from the measured rows, and each benchmark's wall time."""
    ok = {r["bench"]: r for r in rows if r["status"] == "ok"}
    summary = []
    for label, tops, bottom, paper in RATIOS:
        top = next((t for t in tops if t in ok), None)
        if top is None or bottom not in ok or not ok[bottom]["value"]:
            summary.append(failed_row(label, "skipped", "an input row is missing"))
            continue
        a, b = ok[top], ok[bottom]
        via = "" if top == tops[0] else f" ({top})"
        summary.append(row(label, a["value"] / b["value"], "x",
                           reference=None if paper is None else f"{paper:.2f}",
                           notes=f"{micro._fmt(a['value'])} / {micro._fmt(b['value'])} "
                                 f"{a['unit']}{via}"))
    for name, spent in seconds.items():
        errors = sum(1 for r in rows if r.get("group") == name and r["status"] == "error")
        summary.append(row(f"{name}: wall time", spent, "s",
                           notes=f"{errors} error row(s)" if errors else ""))
    return summary


# --- running and reporting ------------------------------------------------------------

def render(rows: list[Row], cfg: Config, title: str) -> Table:
    """micro's table, retitled, with a column of the paper's figures."""
    table = micro.render(rows, cfg, reference="paper")
    table.title = f"ownrun cluster benchmarks: {title}" + (" (--quick)" if cfg.quick else "")
    return table


def run_all(cfg: Config, console: Console) -> list[Row]:
    """Run every benchmark in order, printing its table as it finishes; then the summary."""
    rows: list[Row] = []
    seconds: dict[str, float] = {}
    load_before = os.getloadavg()[0]
    for name, bench in BENCHMARKS:
        start = time.perf_counter()
        with console.status(f"bench: {name}"):
            if micro._engine_up():
                found = [failed_row(name, "skipped", "the engine was already initialized; "
                                                     "these benchmarks start their own clusters")]
            else:
                found = _attempt(name, lambda bench=bench: bench(cfg))
        seconds[name] = time.perf_counter() - start
        for r in found:
            r["group"] = name
        rows += found
        console.print(render(found, cfg, name))
    summary = summarize(rows, seconds)
    summary.append(row("host: 1-min load average", os.getloadavg()[0], "",
                       notes=f"{load_before:.1f} before the first benchmark; "
                             f"{os.cpu_count()} CPUs; other load skews every figure"))
    for r in summary:
        r["group"] = "summary"
    console.print(render(summary, cfg, "summary"))
    return rows + summary


def main(quick: bool = False, json_path: Path | str | None = DEFAULT_JSON,
         console: Console | None = None) -> int:
    """Run the cluster benchmarks, print their tables, write JSON (unless `json_path` is
    None). Returns 1 if any benchmark errored, else 0."""
    console = console or Console()
    cfg = Config(quick=quick, repeat=1 if quick else 3, timeout_s=60.0 if quick else 300.0)
    run = meta.Run("cluster")
    rows = run_all(cfg, console)
    if json_path is not None:
        micro.write_json(rows, cfg, Path(json_path), run)
        console.print(f"results written to {json_path}")
    errors = [r["bench"] for r in rows if r["status"] == "error"]
    if errors:
        console.print(f"[red]{len(errors)} benchmark(s) failed:[/] {escape(', '.join(errors))}")
    return 1 if errors else 0


def cli(argv: list[str] | None = None) -> int:
    """`python benchmarks/cluster.py`: writes benchmarks/results/cluster.json by default."""
    parser = argparse.ArgumentParser(description="the ownership paper's cluster benchmarks")
    parser.add_argument("--quick", action="store_true", help="about 10x smaller counts")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "cluster.json")
    args = parser.parse_args(argv)
    return main(quick=args.quick, json_path=args.json)


if __name__ == "__main__":
    # Run the installed module: workers import the remote functions by module name.
    from ownrun.benchmarks import cluster as _installed

    sys.exit(_installed.cli())
