"""From `[[runs]]` entries or a `[matrix]` to the list of runs, each with where its values came from.

Owns:
1. `from_runs`: one `RunSpec` per `[[runs]]` entry (its name, the rest are overrides);
2. `from_matrix`: the cartesian product of the matrix's lists (nested tables give dotted keys:
   `kwargs.n = [1, 2]`), in file order, minus every combination that matches all keys of one
   `[[matrix.exclude]]` entry; runs are named by the values that vary (`metadata=centralized,n=10`: a nested key by its
   last part when that is unique);
3. `repeated`: `[job] repeat = N` copies each run as `NAME-r1 .. NAME-rN`.

Each RunSpec records, per override, the document path it came from (`("matrix", "videos", 1)`),
so a problem found later is reported at the right line. Problems found here are returned as
(document path, message). Pure (no I/O); thread-safe.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

Path = tuple


@dataclass(frozen=True)
class RunSpec:
    name: str
    overrides: dict[Path, Any]  # option path -> value (paths starting with "cluster" set the cluster)
    sources: dict[Path, Path] = field(default_factory=dict)  # option path -> document path
    origin: Path = ()  # where the run is defined: ("runs", 3) or ("matrix",)
    repeat: int = 0  # 1..N with [job] repeat = N > 1


def flatten(table: dict, prefix: Path = ()) -> dict[Path, Any]:
    """Leaves of nested dicts by path: {"a": {"b": 1}} -> {("a", "b"): 1}."""
    out: dict[Path, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, prefix + (key,)))
        else:
            out[prefix + (key,)] = value
    return out


def nest(leaves: dict[Path, Any]) -> dict:
    """The inverse of `flatten`."""
    out: dict = {}
    for path, value in leaves.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return out


def from_runs(entries: list[dict]) -> tuple[list[RunSpec], list[tuple[Path, str]]]:
    specs, problems, seen = [], [], {}
    for i, entry in enumerate(entries):
        name = entry.get("name")
        if not isinstance(name, str):
            continue  # the entry's own schema reports it
        if name in seen:
            problems.append((("runs", i, "name"), f"duplicate run name {name!r} (also runs[{seen[name]}])"))
        seen.setdefault(name, i)
        leaves = flatten({k: v for k, v in entry.items() if k != "name"})
        specs.append(RunSpec(name, leaves, {p: ("runs", i) + p for p in leaves}, ("runs", i)))
    return specs, problems


def _label(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def from_matrix(matrix: dict) -> tuple[list[RunSpec], list[tuple[Path, str]]]:
    problems: list[tuple[Path, str]] = []
    excludes = matrix.get("exclude", [])
    axes = {}
    for path, values in flatten({k: v for k, v in matrix.items() if k != "exclude"}).items():
        if not isinstance(values, list) or not values:
            problems.append((("matrix",) + path, "a matrix entry must be a non-empty list of values to try"))
        else:
            axes[path] = values
    if not isinstance(excludes, list) or not all(isinstance(e, dict) for e in excludes):
        return [], problems + [(("matrix", "exclude"), "must be a list of tables ([[matrix.exclude]])")]
    rules = []
    for k, exclude in enumerate(excludes):
        rule = flatten(exclude)
        for path in rule:
            if path not in axes:
                keys = ", ".join(".".join(p) for p in axes)
                problems.append((("matrix", "exclude", k) + path, f"not a matrix key (matrix keys: {keys})"))
        rules.append(rule)
    if problems or not axes:
        return [], problems + ([] if axes else [(("matrix",), "the matrix has no lists to expand")])
    varying = [p for p, values in axes.items() if len(values) > 1]
    lasts = [p[-1] for p in varying]
    short = {p: p[-1] if lasts.count(p[-1]) == 1 else ".".join(p) for p in varying}
    specs, used = [], [False] * len(rules)
    for combo in itertools.product(*(list(enumerate(v)) for v in axes.values())):
        values = {path: value for path, (_, value) in zip(axes, combo, strict=True)}
        hit = [k for k, rule in enumerate(rules) if all(values[p] == v for p, v in rule.items())]
        for k in hit:
            used[k] = True
        if hit:
            continue
        name = ",".join(f"{short[p]}={_label(values[p])}" for p in varying) or "run"
        sources = {path: ("matrix",) + path + (j,) for path, (j, _) in zip(axes, combo, strict=True)}
        specs.append(RunSpec(name, values, sources, ("matrix",)))
    for k, was_used in enumerate(used):
        if not was_used:
            problems.append((("matrix", "exclude", k), "excludes no combination of the matrix"))
    if not specs:
        problems.append((("matrix", "exclude"), "the excludes leave no run"))
    return specs, problems


def repeated(specs: list[RunSpec], times: int) -> list[RunSpec]:
    if times <= 1:
        return specs
    return [dataclasses.replace(s, name=f"{s.name}-r{k}", repeat=k) for s in specs for k in range(1, times + 1)]
