"""Filtering, limiting and summarizing state rows: pure functions over lists of dicts.

Owns the filter rule (`(key, op, value)`, op "=" or "!=", compared as text so a CLI's
`--filter state=done` and a library call's `("pinned", "=", True)` both work), the order
(filters first, then the limit: the total counts every row that passed the filters) and the
summaries. Raises `ValueError` for an unknown key or operator, naming the known ones.
Thread-safe (no state).
"""

from __future__ import annotations

from collections import Counter

OPS = ("=", "!=")


class Listing(list):
    """The rows shown (at most `limit`), with `total`: how many passed the filters."""

    def __init__(self, rows, total: int, kind: str, unreachable: list | None = None):
        super().__init__(rows)
        self.total = total
        self.kind = kind
        self.unreachable = unreachable or []

    @property
    def header(self) -> str:
        """'N of M kind' (and who did not answer)."""
        text = f"{len(self)} of {self.total} {self.kind}"
        if self.unreachable:
            text += f" ({len(self.unreachable)} process(es) did not answer)"
        return text

    def to_dict(self) -> dict:
        return {"kind": self.kind, "shown": len(self), "total": self.total, "rows": list(self),
                "unreachable": self.unreachable}


def text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "none" if value is None else str(value)


def parse_filter(spec: str) -> tuple[str, str, str]:
    """'key=value' or 'key!=value' -> (key, op, value)."""
    for op in ("!=", "="):
        key, found, value = spec.partition(op)
        if found and key.strip():
            return key.strip(), op, value.strip()
    raise ValueError(f"bad filter {spec!r}: use KEY=VALUE or KEY!=VALUE")


def select(rows: list[dict], kind: str, filters=(), limit: int | None = None, columns=None,
           unreachable=None, fields=None) -> Listing:
    """The rows passing every filter, the first `limit` of them (columns: the keys kept;
    fields: every key a filter may name, default: those of the rows)."""
    known = set(fields or ())
    if fields is None:
        for row in rows:
            known.update(row)
    checks = []
    for key, op, value in filters or ():
        if op not in OPS:
            raise ValueError(f"unknown filter operator {op!r}: use one of {', '.join(OPS)}")
        if key not in known and (rows or fields is not None):
            raise ValueError(f"unknown {kind} field {key!r}; fields: {', '.join(sorted(known))}")
        checks.append((key, op == "=", text(value).lower()))
    passed = [row for row in rows
              if all((text(row.get(key)).lower() == value) == equal for key, equal, value in checks)]
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    shown = passed if limit is None else passed[:limit]
    if columns is not None:
        shown = [{key: row.get(key) for key in columns} for row in shown]
    return Listing(shown, len(passed), kind, unreachable)


def summarize(rows: list[dict], by: str, state: str = "state") -> dict:
    """{group: {state: count, ..., "total": count}} over rows grouped by `by`."""
    groups: dict[str, Counter] = {}
    for row in rows:
        counter = groups.setdefault(text(row.get(by)), Counter())
        counter[text(row.get(state))] += 1
        counter["total"] += 1
    return {group: dict(counter) for group, counter in sorted(groups.items())}


def memory(objects: list[dict]) -> list[dict]:
    """Objects grouped by owner, the node holding them and (when recorded) the call site that
    created them: count, bytes and pinned count per group."""
    groups: dict[tuple, dict] = {}
    for row in objects:
        key = (row.get("owner"), row.get("owner_node"), row.get("node_id"), row.get("where"), row.get("callsite"))
        group = groups.setdefault(key, {"owner": key[0], "owner_node": key[1], "node_id": key[2],
                                        "where": key[3], "callsite": key[4], "objects": 0, "bytes": 0,
                                        "pinned": 0})
        group["objects"] += 1
        group["bytes"] += row.get("size") or 0
        group["pinned"] += bool(row.get("pinned"))
    return sorted(groups.values(), key=lambda g: (-g["bytes"], text(g["owner"])))
