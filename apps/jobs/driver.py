"""The entry point of one run's driver process: `python -m ownrun.apps.jobs.driver CONFIG_JSON`.

The job runner (runner.py) starts one such process per run, so a run that crashes, hangs or
exits takes nothing else down. This process reads the run's config.json (kind, the app's
options including those the job set, the cluster), checks the options again with the kind's
model, calls the kind's runner (kinds/) and writes summary.json into the run folder (unless
the app wrote its own). Output goes to the run folder's log (the runner redirects it).

Exit codes: 0 ok; 1 the run failed (the last line of the log is `error: ...`, one line);
3 an engine error; 130 interrupted (the runner sends SIGINT to end a run: the app's
`finally` blocks shut its engine down, so nothing is left behind).
"""
from __future__ import annotations

import importlib
import json
import sys
import traceback
from pathlib import Path


def _function(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str]) -> int:
    from ownrun.apps.jobs.kinds import registry
    from rich.console import Console

    config_path = Path(argv[0])
    spec = json.loads(config_path.read_text())
    run_dir = config_path.parent
    console = Console(file=sys.stdout, width=120, highlight=False)
    try:
        kind = registry()[spec["kind"]]
        config = kind.model_for(spec["options"]).model_validate(spec["options"])
        summary = _function(kind.runner)(config, spec["cluster"], run_dir, console)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception as exc:
        traceback.print_exc()
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        text = " ".join(lines[:1] + lines[1:][-1:]) or type(exc).__name__
        print(f"error: {type(exc).__name__}: {text}", file=sys.stderr, flush=True)
        from ownrun import engine

        return 3 if isinstance(exc, engine.EngineError) else 1
    out = run_dir / "summary.json"
    if not out.exists():
        out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
