"""Running a checked job: the run directory, the cluster, one driver process per run, Ctrl-C.

Owns, in order:
1. the run directory `RUNS_DIR/<job>/<timestamp>/` (or the one `--resume` names): the job file
   as given (job.toml), resolved.json, ledger.jsonl (ledger.py) and one folder per run
   (config.json, log.txt, summary.json and the app's files);
2. the cluster: a running one (`[cluster] address`), one embedded cluster for the whole job
   started here with the engine's public API (its address is handed to each run), or none
   (`fresh_cluster = true`: each run's driver starts its own);
3. each run as a child process (driver.py) in its own session, so a terminal's Ctrl-C reaches
   only this process: a run that fails is recorded with its error line and the next one
   starts (`on_failure = "stop"` stops instead); past `timeout_s` it is ended;
4. ending a run: SIGINT (the app's `finally` shuts its engine down), then SIGKILL after
   `STOP_GRACE_S` (the engine's daemons watch their driver's pid and clean up after it);
5. Ctrl-C: the current run is ended, the shared cluster shut down, the ledger records what
   finished, the reports cover it, and KeyboardInterrupt is raised again. A second Ctrl-C
   during that cleanup is ignored;
6. `--resume`: runs whose (name, config hash) the ledger records as finished are skipped.

Not thread-safe: one job per process (the shared cluster is this process's engine).
Failures: a run's failure is an outcome, never an exception; errors of the shared cluster's
engine propagate (exit 3 in the CLI).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..run_dir import new_run_dir
from . import ledger as ledger_mod
from . import report
from .kinds import python as python_kind
from .validate import Job, ResolvedRun

STOP_GRACE_S = 30.0  # from SIGINT to SIGKILL when ending a run


@dataclass
class Outcome:
    name: str
    status: str  # ok | failed | timeout | interrupted | skipped
    error: str | None = None
    duration_s: float | None = None


@dataclass
class JobResult:
    run_dir: Path
    outcomes: list[Outcome] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("failed", "timeout")]


def select(job: Job, only: list[str]) -> list[ResolvedRun]:
    """The runs named in `only` (all when empty); ValueError naming unknown names."""
    if not only:
        return job.runs
    names = {r.name for r in job.runs}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise ValueError(f"no run named {', '.join(map(repr, unknown))} in {job.path} "
                         f"(runs: {', '.join(r.name for r in job.runs)})")
    return [r for r in job.runs if r.name in only]


class JobRunner:
    def __init__(self, job: Job, runs: list[ResolvedRun], console, resume_dir: Path | None = None):
        self.job = job
        self.runs = runs
        self.console = console
        self.resume = resume_dir is not None
        self.run_dir = Path(resume_dir) if resume_dir is not None else new_run_dir(Path(job.settings.runs_dir) / job.name)
        self.ledger = ledger_mod.Ledger(self.run_dir)

    # ---- the job ---------------------------------------------------------------------------
    def run(self) -> JobResult:
        result = JobResult(self.run_dir)
        done = ledger_mod.finished(self.ledger.path) if self.resume else set()
        if self.resume and not self.ledger.path.exists():
            raise FileNotFoundError(2, "not a job run directory (no ledger.jsonl)", str(self.run_dir))
        self._write_header()
        todo = [r for r in self.runs if (r.name, r.config_hash) not in done]
        for run in self.runs:
            if run not in todo:
                self.ledger.write("run_skipped", run=run.name, config_hash=run.config_hash)
                result.outcomes.append(Outcome(run.name, "skipped"))
                self._say(f"[dim]{run.name}: finished earlier, skipped[/]")
        try:
            with self._cluster(todo) as address:
                for run in todo:
                    outcome = self._run_one(run, address)
                    result.outcomes.append(outcome)
                    if outcome.status in ("failed", "timeout") and self.job.settings.on_failure == "stop":
                        self._say("stopping: on_failure = \"stop\"")
                        break
        except KeyboardInterrupt:
            result.interrupted = True
            with _sigint_ignored():
                self._finish(result, "interrupted")
            raise
        self._finish(result, "finished" if len(result.outcomes) == len(self.runs) else "stopped")
        return result

    def _write_header(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.job.path, self.run_dir / "job.toml")
        resolved = {**self.job.to_json(), "selected": [r.name for r in self.runs]}
        (self.run_dir / "resolved.json").write_text(json.dumps(resolved, indent=2) + "\n")
        self.ledger.write("job_start", job=self.job.name, runs=[r.name for r in self.runs], resumed=self.resume)

    def _finish(self, result: JobResult, status: str) -> None:
        finished = [o.name for o in result.outcomes if o.status in ("ok", "skipped")]
        self.ledger.write("job_end", status=status, finished=finished)
        report.write_reports(self.run_dir, self.job.kind, self.job.report_fields, self.job.plot)

    @contextlib.contextmanager
    def _cluster(self, todo: list[ResolvedRun]) -> Iterator[str | None]:
        """The address every run joins, or None when each run starts its own cluster."""
        c = self.job.cluster
        if c.address or not todo or self.job.settings.fresh_cluster:
            yield c.address
            return
        from ownrun import engine

        options = {k: v for k, v in (("num_cpus", c.num_cpus), ("object_store_memory", c.object_store_memory),
                                     ("node_death_timeout", c.node_death_timeout)) if v is not None}
        info = engine.init(num_nodes=c.nodes, **options)
        self._say(f"[dim]started the job's cluster at {info['address']}[/]")
        try:
            yield info["address"]
        finally:
            with _sigint_ignored():
                engine.shutdown()

    # ---- one run ----------------------------------------------------------------------------
    def _run_one(self, run: ResolvedRun, address: str | None) -> Outcome:
        folder = self.run_dir / run.name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        ctx = self.job.context(run, address)
        managed = {k: fill(ctx) for k, fill in self.job.kind.managed.items()}
        spec = {"name": run.name, "kind": run.kind, "options": {**run.options, **managed},
                "cluster": ctx.cluster, "config_hash": run.config_hash}
        (folder / "config.json").write_text(json.dumps(spec, indent=2) + "\n")
        cwd, env = self._process_setting(run)
        self.ledger.write("run_start", run=run.name, config_hash=run.config_hash)
        self._say(f"[bold]{run.name}[/]: running ({folder})")
        started = time.monotonic()
        with open(folder / "log.txt", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "ownrun.apps.jobs.driver", str((folder / "config.json").resolve())],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                    start_new_session=True)
            try:
                code = proc.wait(timeout=self.job.settings.timeout_s)
                status = "ok" if code == 0 else "failed"
                error = None if code == 0 else _error_line(folder / "log.txt", code)
            except subprocess.TimeoutExpired:
                _stop(proc)
                code, status = proc.returncode, "timeout"
                error = f"ended after timeout_s = {self.job.settings.timeout_s:g} s"
            except KeyboardInterrupt:
                with _sigint_ignored():
                    _stop(proc)
                    self._end(run, "interrupted", "interrupted (Ctrl-C)", proc.returncode, started)
                raise
        outcome = self._end(run, status, error, code, started)
        return outcome

    def _end(self, run: ResolvedRun, status: str, error: str | None, code, started: float) -> Outcome:
        duration = round(time.monotonic() - started, 2)
        self.ledger.write("run_end", run=run.name, config_hash=run.config_hash, status=status, error=error,
                          exit_code=code, duration_s=duration)
        color = "green" if status == "ok" else "red"
        self._say(f"[bold]{run.name}[/]: [{color}]{status}[/] in {duration:.1f} s" + (f": {error}" if error else ""))
        return Outcome(run.name, status, error, duration)

    def _process_setting(self, run: ResolvedRun) -> tuple[Path, dict]:
        env = dict(os.environ)
        env.pop("OWNRUN_DEBUG", None)
        if run.kind == "python":
            config = python_kind.PythonConfig.model_validate(run.options)
            env.update(config.env)
            return python_kind.working_dir(config, self.job.base_dir), env
        return self.job.base_dir, env

    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, soft_wrap=True)


def _stop(proc: subprocess.Popen) -> None:
    """Ends a run's driver: SIGINT, then SIGKILL after STOP_GRACE_S."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _error_line(log: Path, code: int) -> str:
    """The driver's one-line error (the log's last `error:` line), else the exit code."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    return f"the run's process exited with code {code}" if code >= 0 else f"the run's process was killed by signal {-code}"


@contextlib.contextmanager
def _sigint_ignored():
    """Cleanup that a second Ctrl-C must not cut short (main thread only; elsewhere a no-op)."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
