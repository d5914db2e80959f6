"""pytest plugin for run.py: appends one JSON line per test phase and per failed collection
to the file named by $RAY_COMPAT_REPORT (nodeid, phase, outcome, the exception's one-line
message, duration)."""

import json
import os


def _message(report) -> str:
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        return crash.message
    if isinstance(longrepr, tuple):  # a skip: (path, lineno, reason)
        return str(longrepr[-1])
    text = str(longrepr).strip().splitlines()
    errors = [line for line in text if line.startswith("E ")]
    return (errors[-1][2:].strip() if errors else (text[-1] if text else ""))[:2000]


def _write(record: dict) -> None:
    path = os.environ.get("RAY_COMPAT_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


def pytest_runtest_logreport(report):
    _write({"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
            "message": _message(report) if report.outcome != "passed" else "",
            "duration": round(report.duration, 2)})


def pytest_collectreport(report):
    if report.outcome == "failed":
        _write({"nodeid": report.nodeid, "when": "collect", "outcome": "failed",
                "message": _message(report), "duration": 0.0})


def pytest_collection_modifyitems(config, items):
    """Deselects the tests named in $RAY_COMPAT_DESELECT (a JSON list of "name" or
    "Class::name"): run.py's statically internal ones, unless it was asked to run them."""
    names = set(json.loads(os.environ.get("RAY_COMPAT_DESELECT", "[]")))
    if not names:
        return
    keep, drop = [], []
    for item in items:
        func = item.nodeid.split("::", 1)[-1].split("[")[0]
        (drop if func in names else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
