"""How `ownrun` fails: one table of exception type -> one-line message and exit code.

`RootGroup` runs the whole command line; whatever escapes a command (or the argument
parser) is looked up in `RULES`, printed as one line, and turned into the exit code.
`ownrun --debug ...` (or OWNRUN_DEBUG=1) also prints the traceback. Classes are named by
dotted path and resolved only when an error happens, so the CLI starts (and works) before
the engine's error module exists and without importing the engine.

The exit codes (README "Exit codes" repeats this table; keep the two in step):
  0 ok; 1 the work itself failed (a run, a video, a benchmark) or an unforeseen error;
  2 usage: a bad flag, value or job file; 3 the engine or the cluster failed;
  4 a module is missing (broken install); 5 a file is missing, unreadable or corrupt;
  130 interrupted (Ctrl-C).
The convention for commands and apps: raise `typer.BadParameter` (or let the pydantic model
of cli/options.py reject the value) for usage errors; `FileNotFoundError` / `OSError`, or an
app's own exception with a row here, for file problems; let engine errors propagate. An
exception an app raises on purpose gets a row below (its message is one line naming what
failed), so it is never shown as "unexpected". Ctrl-C needs no handling in commands:
`RootGroup.invoke` turns it into `Interrupted` before Typer can swallow it.

Also here, because it fixes Typer's help for every command at once: flags (`--debug`,
`--live/--no-live`) show no `<bool>` type.
"""
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ownrun.cli.console import console
from rich.markup import escape
from typer.core import TyperGroup


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _usage(exc: Any) -> str:
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "ownrun"
    return f"{exc.format_message()} (see '{command} --help')"


def _named(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _engine(exc: BaseException) -> str:
    """First and last line: a TaskError's message is "task f failed:" + remote traceback,
    whose last line names the remote exception."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " ".join(lines[:1] + lines[1:][-1:]) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _unexpected(exc: BaseException) -> str:
    return f"unexpected {_named(exc)} (run 'ownrun --debug ...' for the traceback)"


class Interrupted(Exception):
    """Ctrl-C during a command. Typer turns a KeyboardInterrupt into a silent `Exit(130)`
    (older Click into `Abort`, "aborted"), both before `RootGroup.main` could see it, so
    `RootGroup.invoke` re-raises it as this plain exception."""


def _missing_module(exc: BaseException) -> str:
    return f"missing module {getattr(exc, 'name', None) or _first_line(exc)}; reinstall ownrun"


# (exception classes as dotted paths, exit code, one-line message). First match wins.
# Click's exceptions are listed under both homes: Typer >= 0.2x vendors Click as typer._click.
RULES: list[tuple[tuple[str, ...], int, Callable[[Any], str]]] = [
    (("typer._click.exceptions.UsageError", "click.exceptions.UsageError"), 2, _usage),
    (("typer._click.exceptions.ClickException", "click.exceptions.ClickException"), 2, _usage),
    (("typer._click.exceptions.Abort", "click.exceptions.Abort"), 1, lambda e: "aborted"),
    (("builtins.KeyboardInterrupt", "ownrun.cli.errors.Interrupted"), 130, lambda e: "interrupted"),
    (("ownrun.apps.jobs.validate.JobFileError",), 2, _first_line),  # its problems are printed first
    (("ownrun.engine.errors.ClusterError",), 3, _first_line),  # says what to do: no prefix
    (("ownrun.engine.errors.EngineError",), 3, _engine),
    (("ownrun.engine.rpc.oneshot.PeerError", "ownrun.engine.rpc.oneshot.RequestFailed"), 3,
     _first_line),  # a head or node that cannot be reached (the message says which)
    (("ownrun.apps.video.runner.InputError",), 5, _first_line),  # names the file
    (("ownrun.apps.video.pipeline.VideoError",), 1, _first_line),  # names the video
    (("builtins.ModuleNotFoundError",), 4, _missing_module),
    (("builtins.FileNotFoundError",), 5, lambda e: f"file not found: {e.filename or e}"),
    (("builtins.PermissionError",), 5, lambda e: f"permission denied: {e.filename or e}"),
    (("builtins.OSError",), 5, _named),
    (("builtins.Exception",), 1, _unexpected),
]
_QUIET = {2, 130}  # usage errors and Ctrl-C: never worth a traceback
_TRUE = {"1", "true", "yes", "on"}


def _resolve(path: str) -> type | None:
    module, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name, None)
    except Exception:  # the engine may be absent or half-written; the CLI must still report
        return None
    return found if isinstance(found, type) else None


def classify(exc: BaseException) -> tuple[int, str]:
    """The exit code and one-line message for `exc`."""
    for paths, code, message in RULES:
        for path in paths:
            cls = _resolve(path)
            if cls is not None and isinstance(exc, cls):
                return code, message(exc)
    return 1, _unexpected(exc)


def report(exc: BaseException, debug: bool) -> int:
    """Print `exc` as one line (after its traceback when `debug`); return the exit code."""
    code, message = classify(exc)
    if debug and code not in _QUIET:
        from rich.traceback import Traceback  # only with --debug: rich.traceback is slow to import

        console.print(Traceback.from_exception(type(exc), exc, exc.__traceback__))
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return code


def _flags_as_flags() -> None:
    """Typer (0.2x) shows a flag's type in the help (`--debug <bool>`, `--help <bool>`); a
    flag takes no value, so its help shows none. Patched once on Typer's option class, so
    every command (and the `--help` option Typer adds per command) gets it."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "_ownrun_flags", False):
        return

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) else shown(self, ctx)

    display_type_rich._ownrun_flags = True
    TyperOption.display_type_rich = display_type_rich


class RootGroup(TyperGroup):
    """The root command: Typer's group, but every failure ends in `report()`."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        args = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in args or os.environ.get("OWNRUN_DEBUG", "").lower() in _TRUE
        _flags_as_flags()
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except (Exception, KeyboardInterrupt) as exc:
            code = report(exc, debug)
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code
