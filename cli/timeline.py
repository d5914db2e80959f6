"""`ownrun timeline -o trace.json`: a Chrome trace (Perfetto) of the cluster's recent timeline
events — task spans, argument fetches, object transfers, lease waits, retries and failures —
one track per process (engine/util/state.py `timeline`)."""
from pathlib import Path
from typing import Annotated

import typer
from ownrun.cli.console import console
from ownrun.cli.state import Address, Key


def timeline(
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the trace JSON.")] = Path(
        "trace.json"),
    address: Address = None,
    cluster_key: Key = None,
) -> None:
    """Write a Chrome trace of the cluster's recent tasks, fetches, transfers and lease waits
    (open it in ui.perfetto.dev)."""
    from ownrun.engine.util import state

    trace = state.timeline(str(output), address, cluster_key)
    spans = sum(1 for event in trace["traceEvents"] if event["ph"] == "X" and event["cat"] == "task")
    other = trace["otherData"]
    dropped = f"; {other['dropped_events']} older event(s) dropped" if other["dropped_events"] else ""
    console.print(f"wrote {spans} task span(s) from {other['processes']} process(es) to {output}{dropped}")


def register(app: typer.Typer) -> None:
    app.command("timeline")(timeline)
