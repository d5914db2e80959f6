"""Typer options generated from a pydantic model, so an app defines each option once.

Owns `model_options(Model)`: a decorator that gives a Typer command one `--flag` per field of
the model (flag = the field name with `-` for `_`, or `json_schema_extra={"flag": ...}`, and
its value's name `json_schema_extra={"metavar": ...}`; help =
the field's `description`; default = the field's default) and hands the command the raw values
as one dict; and `build(Model, values)`, which validates them and turns the first problem into
a usage error naming the flag (exit 2 through cli/errors.py). Constraints and rules across
fields are the model's: nothing here checks values.

`model_options(Model, unset=True)`: every flag defaults to "unset" (None, its help shows the
model's default) and `build` leaves unset flags out, so the model fills them itself (e.g. a
value tuned per env, as PPO's). A list field left unset is [] either way.

Flag types: bool fields become on/off flags, list fields repeatable options, `X | None`
optional ones; anything else (tuples, literals) is read as text and parsed by the model.
Pure (no I/O); thread-safe.
"""
from __future__ import annotations

import functools
import inspect
import types
import typing
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

_SIMPLE = (bool, int, float, str)


def flag_of(name: str, field: FieldInfo) -> str:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return str(extra.get("flag") or "--" + name.replace("_", "-"))


def _cli_type(annotation: Any) -> tuple[Any, bool]:
    """(the type Typer parses, whether it is a list)."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        base, is_list = _cli_type(inner[0]) if len(inner) == 1 else (str, False)
        return (base | None), is_list
    if origin is list:
        item = args[0] if args and args[0] in _SIMPLE else str
        return list[item] | None, True
    return (annotation if annotation in _SIMPLE else str), False


def _text(default: Any) -> Any:
    if default is None or isinstance(default, (bool, int, float, str)):
        return default
    return "x".join(map(str, default)) if isinstance(default, tuple) else str(default)


def _parameter(name: str, field: FieldInfo, unset: bool) -> inspect.Parameter:
    kind, is_list = _cli_type(field.annotation)
    default = None if is_list else field.get_default(call_default_factory=True)
    if default is not None and kind is str:
        default = _text(default)
    help_text = field.description or ""
    if unset:
        from rich.markup import escape

        if default is not None and not isinstance(default, bool):
            help_text += f" [default: {_text(default)}]"
        help_text, default = escape(help_text), None
        kind = kind | None
    flag = flag_of(name, field)
    if kind in (bool, bool | None) and "/" not in flag:
        flag = f"{flag}/--no-{flag.removeprefix('--')}"  # a switch either way, also when unset
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    option = typer.Option(flag, help=help_text, show_default=default is not None, metavar=extra.get("metavar"))
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, option])


def model_options(model: type[BaseModel], exclude: tuple[str, ...] = (), unset: bool = False):
    """Decorates `command(..., options: dict)`: adds a flag per field of `model` (except
    `exclude`) and passes their values as `options` (a list field left unset is []; with
    `unset`, any other flag not given is None: pass `options` to `build` to leave it out)."""
    fields = {n: f for n, f in model.model_fields.items() if n not in exclude}

    def decorate(command):
        own = [p for p in inspect.signature(command).parameters.values() if p.name != "options"]
        generated = [_parameter(name, field, unset) for name, field in fields.items()]

        @functools.wraps(command)
        def wrapper(**kwargs):
            options = {name: kwargs.pop(name) for name in fields}
            for name, field in fields.items():
                if options[name] is None and _cli_type(field.annotation)[1]:
                    options[name] = []
            return command(options=options, **kwargs)

        del wrapper.__wrapped__  # Typer reads the signature below, not the command's
        wrapper.__signature__ = inspect.Signature(own + generated)
        wrapper.__annotations__ = {p.name: p.annotation for p in own + generated}
        return wrapper

    return decorate


def build(model: type[BaseModel], values: dict, drop_unset: bool = False) -> BaseModel:
    """`model(**values)` (without the None values when `drop_unset`), or a usage error naming
    the flag of the first problem."""
    if drop_unset:
        values = {k: v for k, v in values.items() if v is not None}
    try:
        return model(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [p for p in err.get("loc", ()) if isinstance(p, str)]
        message = str(err.get("msg", exc)).removeprefix("Value error, ")
        field = model.model_fields.get(loc[0]) if loc else None
        hint = flag_of(loc[0], field).split("/")[0] if field is not None else None
        raise typer.BadParameter(message, param_hint=f"'{hint}'" if hint else None) from None
