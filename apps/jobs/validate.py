"""Reading and checking a job file: every problem at once, as `FILE:LINE: dotted.path: problem`.

Owns `load(path, sets, address) -> Job`, in this order:
1. read the file with tomllib (a syntax error is one problem at its line);
2. apply `--set dotted.key=VALUE` overrides (VALUE is read as a TOML value, else as text;
   `runs.NAME.key` addresses a `[[runs]]` entry by name) and `--address`;
3. check each section with its model (schema.py), the app's options with its kind's model
   (kinds/), per run: the app table's defaults, then the run's overrides, then the values
   the job sets itself (cluster options); then the rules across sections (per-run cluster
   settings need a fresh cluster, more CPUs than this machine, more runs than max_runs) and
   the kind's own checks (imports, files, cluster needs);
4. map each pydantic location back to the document path the value came from (the app table,
   a run entry, a matrix element or a `--set`) and from there to a line (toml_lines.py).

Unknown keys get a "did you mean" suggestion. Raises `JobFileError` (its `.problems` are the
lines, sorted by line) when anything is wrong; `FileNotFoundError` when the file is missing.
Importing a python entrypoint runs the user's module code. Not thread-safe only in that
(sys.path is changed while importing).
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from . import expand, schema, toml_lines
from .kinds import AppKind, AppNotInstalled, RunContext, registry

DocPath = tuple


class JobFileError(Exception):
    """The job file has problems; `problems` holds one line each."""

    def __init__(self, file: str, problems: list[str]):
        self.file = file
        self.problems = problems
        super().__init__(f"{file}: {len(problems)} problem{'s' if len(problems) != 1 else ''} (listed above)")


@dataclass(frozen=True)
class ResolvedRun:
    """One run as it will execute: checked app options (without the ones the job sets), its
    cluster, and a hash of both that `--resume` compares."""

    name: str
    kind: str
    options: dict
    cluster: dict
    fresh_cluster: bool
    repeat: int = 0

    @property
    def config_hash(self) -> str:
        text = json.dumps({"kind": self.kind, "options": self.options, "cluster": self.cluster,
                           "fresh_cluster": self.fresh_cluster, "repeat": self.repeat}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "options": self.options, "cluster": self.cluster,
                "fresh_cluster": self.fresh_cluster, "repeat": self.repeat, "config_hash": self.config_hash}


@dataclass
class Job:
    path: Path
    text: str
    name: str
    settings: schema.JobSection
    cluster: schema.ClusterSection
    kind: AppKind
    runs: list[ResolvedRun]
    report_fields: list[str]
    plot: str | None
    sets: list[str] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        return self.path.resolve().parent

    def context(self, run: ResolvedRun, address: str | None = None) -> RunContext:
        cluster = dict(run.cluster)
        if address:
            cluster["address"] = address
        return RunContext(cluster, run.fresh_cluster, self.base_dir)

    def to_json(self) -> dict:
        return {"job": self.settings.model_dump(mode="json") | {"name": self.name},
                "cluster": self.cluster.model_dump(mode="json"), "kind": self.kind.name, "sets": self.sets,
                "report": {"fields": self.report_fields, "plot": self.plot},
                "runs": [r.to_json() for r in self.runs]}


# ---- problems --------------------------------------------------------------------------------
class _Problems:
    """Collects problems as (document path, message) and renders them against the file."""

    def __init__(self, file: str, text: str):
        self.file = file
        self.lines = toml_lines.index(text)
        self.set_by: dict[DocPath, str] = {}  # document path -> the --set/--address text that set it
        self.items: list[tuple[int, str]] = []

    def add(self, path: DocPath, message: str, run: str | None = None) -> None:
        """One problem at `path`; the same problem found again for another run is kept once."""
        path = tuple(path)
        where = next((self.set_by[path[:k]] for k in range(len(path), 0, -1) if path[:k] in self.set_by), None)
        shown = toml_lines.dotted(path) or "(file)"
        if where is not None:
            line, prefix = 0, f"{self.file}: {where}"
        else:
            line = toml_lines.line_of(self.lines, path) or 1
            prefix = f"{self.file}:{line}"
        text = f"{prefix}: {shown}: {message}"
        if all(text != t for _, t in self.items):
            self.items.append((line, text))

    def add_set(self, item: str, message: str) -> None:
        """A `--set` that cannot be applied."""
        self.items.append((0, f"{self.file}: --set {item}: {message}"))

    def add_validation(self, exc: ValidationError, model: type[BaseModel], to_doc, run: str | None = None) -> None:
        """Pydantic's errors; `to_doc(loc)` maps a location in `model` to a document path."""
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            if err["type"] == "extra_forbidden":
                path = to_doc(loc, unknown=True)
                self.add(path, _unknown(loc[-1], _fields_at(model, loc[:-1])), run)
            else:
                self.add(to_doc(loc), _message(err), run)

    def lines_sorted(self) -> list[str]:
        return [text for _, text in sorted(self.items, key=lambda item: item[0])]


def _message(err: dict) -> str:
    if err["type"] == "missing":
        return "missing (required)"
    return str(err.get("msg", "invalid")).removeprefix("Value error, ")


def _unknown(key, candidates: list[str]) -> str:
    close = difflib.get_close_matches(str(key), candidates, n=1, cutoff=0.6)
    return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (nested) model at `loc`, for suggestions."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = _model_in(fields[part].annotation)
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# ---- --set -----------------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """A TOML value (`2`, `true`, `[1, 2]`, `"x"`), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _apply_set(data: dict, item: str, problems: _Problems) -> None:
    key, sep, raw = item.partition("=")
    parts = [p for p in key.strip().split(".")]
    if not sep or not all(parts):
        problems.add_set(item, "expected dotted.key=VALUE")
        return
    path: list = []
    node: Any = data
    for k, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            index = _entry_index(node, part)
            if index is None:
                names = ", ".join(str(e.get("name")) for e in node if isinstance(e, dict))
                problems.add_set(item, f"{'.'.join(parts[:k])} has no entry named {part!r} (entries: {names})")
                return
            path.append(index)
            node = node[index]
            continue
        if not isinstance(node, dict):
            problems.add_set(item, f"{'.'.join(parts[:k])} is not a table")
            return
        path.append(part)
        node = node.setdefault(part, {})
    if not isinstance(node, dict):
        problems.add_set(item, f"{'.'.join(parts[:-1])} is not a table")
        return
    node[parts[-1]] = parse_value(raw.strip())
    problems.set_by[tuple(path) + (parts[-1],)] = f"--set {item}"


def _entry_index(entries: list, part: str) -> int | None:
    for i, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("name") == part:
            return i
    return int(part) if part.isdigit() and int(part) < len(entries) else None


# ---- the file --------------------------------------------------------------------------------
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def load(path: str | os.PathLike, sets: list[str] = (), address: str | None = None) -> Job:
    file = str(path)
    text = Path(path).read_text()
    problems = _Problems(file, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        message = _TOML_LINE.sub("", str(exc)).strip()
        raise JobFileError(file, [f"{file}:{match.group(1) if match else 1}: (toml): {message}"]) from None
    for item in sets:
        _apply_set(data, item, problems)
    if address:
        data.setdefault("cluster", {})["address"] = address
        problems.set_by[("cluster", "address")] = f"--address {address}"
    job = _Checker(Path(path), text, data, problems, list(sets)).check()
    if problems.items:
        raise JobFileError(file, problems.lines_sorted())
    return job


class _Checker:
    def __init__(self, path: Path, text: str, data: dict, problems: _Problems, sets: list[str]):
        self.path, self.text, self.data, self.problems, self.sets = path, text, data, problems, sets

    def section(self, name: str, model: type[BaseModel]) -> BaseModel:
        try:
            return model.model_validate(self.data.get(name, {}))
        except ValidationError as exc:
            self.problems.add_validation(exc, model, lambda loc, unknown=False: (name,) + loc)
            return model()

    def check(self) -> Job | None:
        for key in self.data:
            if key not in schema.SECTIONS:
                self.problems.add((key,), _unknown(key, list(schema.SECTIONS)))
        settings = self.section("job", schema.JobSection)
        cluster = self.section("cluster", schema.ClusterSection)
        report = self.section("report", schema.ReportSection)
        kind, model = self.app_kind()
        specs = self.specs(settings)
        if kind is None or model is None:
            return None
        defaults = self.data["app"].get(kind.name, {})
        if not isinstance(defaults, dict):
            self.problems.add(("app", kind.name), "must be a table")
            defaults = {}
        for key in defaults:
            if key in kind.managed:
                self.problems.add(("app", kind.name, key), _managed(key))
        if not specs:  # the runs could not be listed: still check the app table and the cluster
            specs = [expand.RunSpec("run", {}, {}, ())]
        runs = [r for r in (self.resolve(spec, kind, model, defaults, settings, cluster) for spec in specs) if r]
        fields, plot = self.report(report, kind)
        name = settings.name or re.sub(r"[^A-Za-z0-9._-]", "_", self.path.stem)
        return Job(self.path, self.text, name, settings, cluster, kind, runs, fields, plot, self.sets)

    def app_kind(self) -> tuple[AppKind | None, type[BaseModel] | None]:
        app = self.data.get("app")
        kinds = registry()
        if not isinstance(app, dict) or "kind" not in app:
            self.problems.add(("app",) if isinstance(app, dict) else (),
                              f"missing [app] kind (one of: {', '.join(kinds)})")
            return None, None
        name = app["kind"]
        kind = kinds.get(name) if isinstance(name, str) else None
        for key in app:
            if key != "kind" and key not in kinds:
                self.problems.add(("app", key), _unknown(key, ["kind", *kinds]))
            elif key not in ("kind", name):
                self.problems.add(("app", key), f"this job's kind is {name!r}: remove [app.{key}] or set kind = {key!r}")
        if kind is None:
            hint = difflib.get_close_matches(str(name), list(kinds), n=1)
            self.problems.add(("app", "kind"), f"unknown kind {name!r} (one of: {', '.join(kinds)})"
                                               + (f"; did you mean {hint[0]!r}?" if hint else ""))
            return None, None
        try:
            return kind, kind.model()
        except AppNotInstalled as exc:
            self.problems.add(("app", "kind"), str(exc))
            return kind, None

    def specs(self, settings: schema.JobSection) -> list[expand.RunSpec]:
        runs, matrix = self.data.get("runs"), self.data.get("matrix")
        if runs is not None and matrix is not None:
            self.problems.add(("matrix",), "give either [[runs]] or [matrix], not both")
        if runs is not None:
            if not isinstance(runs, list):
                self.problems.add(("runs",), "must be an array of tables ([[runs]])")
                return []
            for i, entry in enumerate(runs):
                try:
                    schema.RunEntry.model_validate(entry)
                except ValidationError as exc:
                    self.problems.add_validation(exc, schema.RunEntry, lambda loc, unknown=False, i=i: ("runs", i) + loc)
            specs, found = expand.from_runs([e for e in runs if isinstance(e, dict)])
        elif matrix is not None:
            if not isinstance(matrix, dict):
                self.problems.add(("matrix",), "must be a table")
                return []
            specs, found = expand.from_matrix(matrix)
        else:
            specs, found = [expand.RunSpec("run", {}, {}, ())], []
        for where, message in found:
            self.problems.add(where, message)
        specs = expand.repeated(specs, settings.repeat)
        if len(specs) > settings.max_runs:
            where = ("matrix",) if matrix is not None and runs is None else ("runs",) if runs else ("job", "repeat")
            self.problems.add(where, f"expands to {len(specs)} runs, more than job.max_runs = {settings.max_runs}")
            return []
        return specs

    def resolve(self, spec: expand.RunSpec, kind: AppKind, model: type[BaseModel], defaults: dict,
                settings: schema.JobSection, cluster: schema.ClusterSection) -> ResolvedRun | None:
        problems = self.problems
        cluster_over = {p[1:]: v for p, v in spec.overrides.items() if p[:1] == ("cluster",)}
        options_over = {p: v for p, v in spec.overrides.items() if p[:1] != ("cluster",)}

        def doc(loc: tuple, unknown: bool = False) -> DocPath:
            """Where the value at `loc` (a path in the run's options) came from."""
            loc = tuple(loc)
            for k in range(len(loc), 0, -1):
                source = spec.sources.get(loc[:k])
                if source is not None:
                    if unknown and source[:1] == ("matrix",):
                        source = source[:-1]  # the key, not one of its values
                    return source + loc[k:]
            for key, source in spec.sources.items():  # a table the run sets some keys of
                if loc and key[:len(loc)] == loc:
                    return source[:len(source) - (len(key) - len(loc))]
            return ("app", kind.name) + loc

        before = len(problems.items)
        if cluster_over and not settings.fresh_cluster:
            for p in cluster_over:
                problems.add(spec.sources[("cluster",) + p],
                             "per-run cluster settings need [job] fresh_cluster = true", spec.name)
        merged_cluster = {**cluster.model_dump(), **expand.nest(cluster_over)}
        try:
            run_cluster = schema.ClusterSection.model_validate(merged_cluster)
        except ValidationError as exc:
            problems.add_validation(exc, schema.ClusterSection,
                                    lambda loc, unknown=False: spec.sources.get(("cluster",) + loc, ("cluster",) + loc),
                                    spec.name)
            return None
        if run_cluster.address and settings.fresh_cluster:
            problems.add(("job", "fresh_cluster"), "a fresh cluster per run cannot be had on a running cluster "
                                                   "(cluster.address)")
        cpus = os.cpu_count() or 1
        if run_cluster.num_cpus is not None and run_cluster.num_cpus > cpus:
            where = spec.sources.get(("cluster", "num_cpus"), ("cluster", "num_cpus"))
            problems.add(where, f"{run_cluster.num_cpus:g} CPUs per node, but this machine has {cpus}", spec.name)
        for p in options_over:
            if p[0] in kind.managed:
                problems.add(spec.sources[p], _managed(p[0]), spec.name)
        options = _deep_merge(defaults, expand.nest(options_over))
        model = kind.model_for(options)
        ctx = RunContext(run_cluster.model_dump(), settings.fresh_cluster, self.path.resolve().parent)
        managed = {k: fill(ctx) for k, fill in kind.managed.items() if k in model.model_fields}
        try:
            config = model.model_validate({**options, **managed})
        except ValidationError as exc:
            problems.add_validation(exc, model, doc, spec.name)
            return None
        for loc, message in kind.check(config, ctx):
            problems.add(doc(loc) if loc[:1] != ("cluster",) else loc, message, spec.name)
        if len(problems.items) > before:
            return None
        dumped = config.model_dump(mode="json", exclude=set(managed))
        return ResolvedRun(spec.name, kind.name, dumped, run_cluster.model_dump(mode="json"),
                           settings.fresh_cluster, spec.repeat)

    def report(self, report: schema.ReportSection, kind: AppKind) -> tuple[list[str], str | None]:
        fields = list(report.fields) if report.fields is not None else list(kind.summary_fields)
        plot = report.plot if report.plot is not None else kind.default_plot
        if plot == "none":
            plot = None
        if plot is not None and plot not in kind.plots:
            choices = ", ".join([*kind.plots, "none"])
            self.problems.add(("report", "plot"), f"no plot {plot!r} for kind {kind.name!r} (one of: {choices})")
        if report.fields is not None and kind.summary_keys:
            for k, name in enumerate(fields):
                if name.split(".")[0] not in kind.summary_keys:
                    self.problems.add(("report", "fields", k), _unknown(name.split(".")[0], list(kind.summary_keys))
                                      .replace("unknown key", "not a summary field"))
        return fields, plot


def _managed(key: str) -> str:
    return f"set by the job, not per app: use [cluster] {key}" if key in ("address", "nodes", "num_cpus") \
        else "set by the job runner for every run; remove it"


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
