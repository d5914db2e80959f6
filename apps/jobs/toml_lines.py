"""Where each key and value of a TOML document starts: dotted path -> line number.

tomllib returns plain dicts without positions, and pydantic reports problems by path
(`("runs", 2, "fail")`), so validation needs this index to print `FILE:LINE:`. `index(text)`
scans the text once, understanding table headers (`[a.b]`), arrays of tables (`[[runs]]`,
numbered from 0 like the list tomllib builds), dotted and quoted keys, inline tables and
(multi-line) arrays, whose elements are indexed by position; strings (all four kinds) and
comments are skipped, so brackets inside them do not confuse it. `line_of(index, path)`
answers with the line of the longest prefix of `path` that was seen.

It indexes documents that tomllib already accepted: on malformed input it returns what it
found so far and never raises. Pure and thread-safe.
"""
from __future__ import annotations

Path = tuple  # of str (keys) and int (array positions)

_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class _Scanner:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.line = 1
        self.found: dict[Path, int] = {}
        self.table_counts: dict[Path, int] = {}

    # ---- low level ---------------------------------------------------------------------------
    def peek(self, k: int = 0) -> str:
        i = self.pos + k
        return self.text[i] if i < len(self.text) else ""

    def advance(self, k: int = 1) -> None:
        for _ in range(k):
            if self.pos < len(self.text):
                if self.text[self.pos] == "\n":
                    self.line += 1
                self.pos += 1

    def skip_blank(self, newlines: bool) -> None:
        """Spaces, tabs, comments and (if `newlines`) line breaks."""
        while self.pos < len(self.text):
            c = self.peek()
            if c in " \t\r" or (newlines and c == "\n"):
                self.advance()
            elif c == "#":
                while self.pos < len(self.text) and self.peek() != "\n":
                    self.advance()
            else:
                return

    def skip_string(self) -> str:
        quote = self.peek()
        triple = self.text.startswith(quote * 3, self.pos)
        if triple:
            self.advance(3)
            end = self.text.find(quote * 3, self.pos)
            end = len(self.text) if end < 0 else end
            while self.pos < end:
                self.advance()
            self.advance(3)
            while self.peek() == quote:  # up to two quotes may close a multi-line string
                self.advance()
            return ""
        self.advance()
        out = []
        while self.pos < len(self.text) and self.peek() not in (quote, "\n"):
            if quote == '"' and self.peek() == "\\":
                self.advance()
            out.append(self.peek())
            self.advance()
        self.advance()
        return "".join(out)

    def record(self, path: Path) -> None:
        self.found.setdefault(path, self.line)

    # ---- grammar -----------------------------------------------------------------------------
    def key(self) -> list[str]:
        """A dotted key (`a."b c".d`), stopping before `=` or `]`."""
        parts = []
        while True:
            self.skip_blank(newlines=False)
            c = self.peek()
            if c in ('"', "'"):
                parts.append(self.skip_string())
            else:
                start = self.pos
                while self.peek() in _BARE and self.peek():
                    self.advance()
                if self.pos == start:
                    return parts
                parts.append(self.text[start:self.pos])
            self.skip_blank(newlines=False)
            if self.peek() != ".":
                return parts
            self.advance()

    def value(self, path: Path) -> None:
        self.skip_blank(newlines=False)
        c = self.peek()
        if c == "[":
            self.advance()
            k = 0
            while True:
                self.skip_blank(newlines=True)
                if self.peek() in ("]", ""):
                    self.advance()
                    return
                self.record(path + (k,))
                self.value(path + (k,))
                self.skip_blank(newlines=True)
                if self.peek() == ",":
                    self.advance()
                    k += 1
        elif c == "{":
            self.advance()
            while True:
                self.skip_blank(newlines=False)
                if self.peek() in ("}", "", "\n"):
                    self.advance()
                    return
                if self.peek() == ",":
                    self.advance()
                    continue
                self.assignment(path)
        elif c in ('"', "'"):
            self.skip_string()
        else:
            while self.peek() and self.peek() not in ",]}\n#":
                self.advance()

    def assignment(self, table: Path) -> None:
        parts = self.key()
        if not parts:  # not a key: skip the rest of the line
            while self.peek() and self.peek() != "\n":
                self.advance()
            return
        for k in range(1, len(parts) + 1):
            self.record(table + tuple(parts[:k]))
        self.skip_blank(newlines=False)
        if self.peek() == "=":
            self.advance()
            self.value(table + tuple(parts))

    def header(self) -> Path:
        """A `[table]` or `[[array]]` header; `[runs.cluster]` after `[[runs]]` means the table
        inside the latest runs entry."""
        array = self.text.startswith("[[", self.pos)
        self.advance(2 if array else 1)
        parts = self.key()
        self.skip_blank(newlines=False)
        self.advance(2 if array else 1)
        path: Path = ()
        for part in parts[:-1]:
            path += (part,)
            if path in self.table_counts:
                path += (self.table_counts[path] - 1,)
        path += tuple(parts[-1:])
        self.record(path)
        if array:
            position = self.table_counts.get(path, 0)
            self.table_counts[path] = position + 1
            path += (position,)
            self.record(path)
        return path

    def document(self) -> dict[Path, int]:
        table: Path = ()
        while True:
            self.skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return self.found
            if self.peek() == "[":
                table = self.header()
            else:
                self.assignment(table)


def index(text: str) -> dict[Path, int]:
    """Dotted path -> the line (1-based) where that key, table or array element starts."""
    try:
        return _Scanner(text).document()
    except (IndexError, ValueError):  # malformed input: keep what was indexed
        return {}


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of `path`, or of its longest indexed prefix; None if nothing matches."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


def dotted(path: Path) -> str:
    """("runs", 2, "fail") -> "runs[2].fail"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
