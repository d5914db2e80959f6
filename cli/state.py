"""`ownrun list KIND` and `ownrun summary KIND`: the state API (engine/util/state.py) as
tables or JSON, against the cluster started from this machine or the one at `--address`.

Every listing says "N of M" (M: the rows that passed the filters, before `--limit`).
A bad `--filter` or an unknown field is a usage error (exit 2); a cluster that does not
answer is an engine error (exit 3, cli/errors.py).
"""
import enum
import json
from typing import Annotated

import typer
from ownrun.cli.console import console
from ownrun.cli.start import KEY_HELP, QUERY_ADDRESS_HELP, check_key, check_query_address
from rich.markup import escape
from rich.table import Table

Address = Annotated[str | None, typer.Option("--address", callback=check_query_address, help=QUERY_ADDRESS_HELP)]
Key = Annotated[str | None, typer.Option("--cluster-key", envvar="OWNRUN_CLUSTER_KEY",
                                         callback=check_key, help=KEY_HELP)]


class Kind(enum.StrEnum):
    tasks = "tasks"
    actors = "actors"
    objects = "objects"
    nodes = "nodes"
    workers = "workers"


class SummaryKind(enum.StrEnum):
    tasks = "tasks"
    actors = "actors"
    objects = "objects"


class Format(enum.StrEnum):
    table = "table"
    json = "json"


def _filters(values: list[str] | None) -> list[tuple[str, str, str]]:
    from ownrun.engine.state.query import parse_filter

    try:
        return [parse_filter(value) for value in values or ()]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--filter") from None


def emit_json(data) -> None:
    """JSON on stdout, unwrapped and unstyled (for pipes and scripts)."""
    console.print(json.dumps(data, default=str), soft_wrap=True, markup=False, highlight=False)


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    for prefix in ("tcp://", "ipc://"):
        text = text.removeprefix(prefix)
    return escape(text)


def print_rows(title: str, rows: list[dict], caption: str | None = None) -> None:
    if not rows:
        console.print(title)
        if caption:
            console.print(caption)
        return
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    columns = list(rows[0]) if rows else []
    for column in columns:
        table.add_column(column, no_wrap=column.endswith("_id"), overflow="fold")
    for row in rows:
        table.add_row(*(cell(row.get(column)) for column in columns))
    console.print(table)


def list_command(
    kind: Annotated[Kind, typer.Argument(help="What to list.")],
    filter_: Annotated[list[str] | None, typer.Option(
        "--filter", metavar="KEY=VALUE", help="KEY=VALUE or KEY!=VALUE (repeatable; applied before --limit).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Show at most this many rows.")] = 100,
    detail: Annotated[bool, typer.Option("--detail", help="Every field, not the usual columns.")] = False,
    output: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
    address: Address = None,
    cluster_key: Key = None,
) -> None:
    """List the tasks, actors, objects, nodes or workers of a running cluster (asked of their owners)."""
    from ownrun.engine.util import state

    filters = _filters(filter_)
    try:
        listing = state.list_state(kind.value, filters, limit, detail, address, cluster_key)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--filter") from None
    if output is Format.json:
        emit_json(listing.to_dict())
        return
    print_rows(f"{kind.value} ({listing.header})", list(listing),
               _unreachable_caption(listing.unreachable))


def _unreachable_caption(unreachable: list) -> str | None:
    if not unreachable:
        return None
    return "did not answer: " + ", ".join(cell(item["address"]) for item in unreachable)


def summary_command(
    kind: Annotated[SummaryKind, typer.Argument(help="What to summarize.")],
    output: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
    address: Address = None,
    cluster_key: Key = None,
) -> None:
    """Count tasks (by name and state), actors (by class and state) or objects (by where they are)."""
    from ownrun.engine.util import state

    if kind is SummaryKind.objects:
        result = state.summarize_objects(address, cluster_key)
        rows = [{"where": where, **counts} for where, counts in result.items()]
    else:
        summarize = state.summarize_tasks if kind is SummaryKind.tasks else state.summarize_actors
        result = summarize(address, cluster_key)
        states = sorted({s for counts in result.values() for s in counts if s != "total"})
        group = "name" if kind is SummaryKind.tasks else "class_name"
        rows = [{group: name, **{s: counts.get(s, 0) for s in states}, "total": counts["total"]}
                for name, counts in result.items()]
    if output is Format.json:
        emit_json(result)
        return
    print_rows(f"{kind.value} summary ({len(rows)} group(s))", rows)


def register(app: typer.Typer) -> None:
    app.command("list")(list_command)
    app.command("summary")(summary_command)
