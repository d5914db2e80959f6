"""`ownrun run JOB.toml` (config-driven batch jobs) and `ownrun runs compare DIR ...`.

Thin: the job file is read and checked by ownrun.apps.jobs.validate (every problem printed,
one line each, then exit 2), the runs are executed by ownrun.apps.jobs.runner, and the
tables come from ownrun.apps.jobs.report. Exit codes: 0 every run ok; 1 a run failed or
timed out; 2 the job file or the command line is wrong; 5 a file is missing; 130 Ctrl-C.
"""
from pathlib import Path
from typing import Annotated

import typer
from ownrun.cli.console import console

runs_app = typer.Typer(help="Compare the runs of finished jobs.", no_args_is_help=True)


def _split(values: list[str] | None) -> list[str]:
    return [part for value in values or [] for part in value.split(",") if part]


def run(
    job_file: Annotated[Path, typer.Argument(help="The job file (TOML).", metavar="JOB.toml")],
    check: Annotated[bool, typer.Option("--check", help="Check the job file and exit.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the expanded runs and exit.")] = False,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Run only these runs (repeatable, or comma-separated names).")] = None,
    sets: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a value of the file: dotted.key=VALUE (a TOML value; runs.NAME.key "
                      "for one [[runs]] entry). Repeatable.")] = None,
    resume: Annotated[Path | None, typer.Option(
        "--resume", help="Continue the job in this run directory, skipping runs its ledger records as "
                         "finished with the same resolved config.")] = None,
    address: Annotated[str | None, typer.Option(
        "--address", help="Run on the cluster at HOST:PORT (overrides [cluster] address).")] = None,
) -> None:
    """Run a job file: its runs one after another, each in its own driver process."""
    from ownrun.apps.jobs import report, runner, validate

    try:
        job = validate.load(job_file, sets or [], address)
    except validate.JobFileError as exc:
        for line in exc.problems:
            console.print(line, soft_wrap=True, markup=False)
        raise
    try:
        selected = runner.select(job, _split(only))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--only'") from None
    if check:
        console.print(f"{job_file}: ok ({len(selected)} runs of kind {job.kind.name})", soft_wrap=True)
        return
    if dry_run:
        console.print(report.run_list(job, selected))
        return
    result = runner.JobRunner(job, selected, console, resume).run()
    rows = report.job_rows(result.run_dir)
    console.print(report.table(rows, job.report_fields, f"{job.name}: {len(rows)} runs"))
    console.print(f"run directory: {result.run_dir}", soft_wrap=True)
    if result.failed:
        raise typer.Exit(1)


@runs_app.command("compare")
def compare(
    dirs: Annotated[list[Path], typer.Argument(help="Job run directories or single run folders.")],
    fields: Annotated[list[str] | None, typer.Option(
        "--field", help="Summary fields to compare (dotted paths; repeatable; default: the first "
                        "job's report fields).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the table as CSV here.")] = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Draw the runs' overlay plot (their kind's) into this PNG.")] = None,
) -> None:
    """Compare runs of different jobs in one table (and one plot)."""
    from ownrun.apps.jobs import report

    comparison = report.compare(dirs, _split(fields))
    console.print(report.table(comparison.rows, comparison.fields, "ownrun runs compare"))
    if out is not None:
        report.write_csv(comparison.rows, comparison.fields, out)
        console.print(f"wrote {out}")
    if plot is not None:
        path = report.compare_plot(comparison, plot)
        console.print(f"wrote {path}" if path else "no plot: the runs' kind has none, or no run has its files")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.add_typer(runs_app, name="runs")
