"""`ownrun logs`: the session's log files — the list, or one file's tail (`--follow` to keep
reading): the head's, a node daemon's, or a worker's (by id, or by the actor or task it ran,
found through the state API). Thin over engine/state/logs.py."""
import datetime
from typing import Annotated

import typer
from ownrun.cli.console import console
from ownrun.cli.state import Address, Key, print_rows


def logs(
    node: Annotated[str | None, typer.Option("--node", help="A node daemon's log (its node id).")] = None,
    worker: Annotated[str | None, typer.Option("--worker", help="A worker's log (its id or a prefix).")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="The log of the worker an actor runs on "
                                                               "(its name or id).")] = None,
    task: Annotated[str | None, typer.Option("--task", help="The log of the worker a task ran on.")] = None,
    head: Annotated[bool, typer.Option("--head", help="The head's log.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many last lines to show.")] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing what is appended.")] = False,
    address: Address = None,
    cluster_key: Key = None,
) -> None:
    """Show the session's log files, or the tail of one of them."""
    from ownrun.engine.state import logs as L

    chosen = [name for name, value in (("--node", node), ("--worker", worker), ("--actor", actor),
                                       ("--task", task), ("--head", head)) if value]
    if len(chosen) > 1:
        raise typer.BadParameter(f"give one of {', '.join(chosen)}")
    session = L.session_dir()
    if not chosen:
        rows = [{"file": f["name"], "bytes": f["bytes"],
                 "modified": datetime.datetime.fromtimestamp(f["modified"]).strftime("%H:%M:%S")}
                for f in L.files(session)]
        print_rows(f"logs of {session}", rows)
        return
    if actor is not None or task is not None:
        worker = _worker_of(actor, task, address, cluster_key)
    path = L.pick(session, node=node, worker=worker, head=head)
    for line in L.tail(path, lines):
        console.out(line, end="", highlight=False)
    if follow:
        L.follow(path, lambda text: console.out(text, end="", highlight=False))


def _worker_of(actor: str | None, task: str | None, address, cluster_key) -> str:
    from ownrun.engine.util import state

    if actor is not None:
        rows = [row for row in state.list_actors(limit=None, detail=True, address=address, cluster_key=cluster_key)
                if actor in (row["name"], row["actor_id"])]
        what = f"actor {actor!r}"
    else:
        rows = list(state.list_tasks([("task_id", "=", task)], limit=None, address=address, cluster_key=cluster_key))
        what = f"task {task}"
    worker_ids = {row["worker_id"] for row in rows if row.get("worker_id")}
    if len(worker_ids) != 1:
        raise typer.BadParameter(f"{what} is not known to any owner" if not rows else
                                 f"{what} has no single worker ({len(worker_ids)} found)")
    return worker_ids.pop()


def register(app: typer.Typer) -> None:
    app.command("logs")(logs)
