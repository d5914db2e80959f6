"""`kind = "python"`: any user function that uses `ownrun.engine`, as `[app.python]`.

    [app.python]
    entrypoint = "mypkg.experiments:sweep"   # module:function
    args = [1, 2]
    kwargs = { size = 1000 }
    working_dir = "."                        # on sys.path and the cwd of the run (default: the job file's folder)
    env = { OMP_NUM_THREADS = "1" }          # added to the run's environment

The run's driver process connects the engine (the job's cluster) before calling the function
and shuts it down after; the function must not call `engine.init` itself. A function with a
`run_dir` parameter gets the run's folder (for its own files). What it returns is the run's
summary: a dict (JSON-able) as it is, anything else as {"result": value}. Checked before the
job starts: the module imports, the function exists, and the arguments bind to its signature.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from . import AppKind, RunContext


class PythonConfig(BaseModel):
    """The options of `[app.python]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entrypoint: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
                            description='The function to run, as "package.module:function".')
    args: list[Any] = Field(default_factory=list, description="Positional arguments.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments.")
    working_dir: str | None = Field(None, description="Put on sys.path and used as the run's cwd "
                                                      "(default: the job file's folder).")
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables of the run.")


def working_dir(config: PythonConfig, base_dir: Path) -> Path:
    return (base_dir / (config.working_dir or ".")).resolve()


@contextlib.contextmanager
def _on_path(folder: Path):
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def load(config: PythonConfig, folder: Path):
    """The entrypoint's function; ImportError / AttributeError / TypeError say why not."""
    module_name, _, name = config.entrypoint.partition(":")
    with _on_path(folder):
        module = importlib.import_module(module_name)
    func = getattr(module, name, None)
    if func is None:
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
    if not callable(func):
        raise TypeError(f"{config.entrypoint} is not a function")
    return func


def _check(config: PythonConfig, ctx: RunContext) -> list:
    folder = working_dir(config, ctx.base_dir)
    if not folder.is_dir():
        return [(("working_dir",), f"no such directory: {folder}")]
    try:
        func = load(config, folder)
    except Exception as exc:  # whatever importing the user's module raises
        return [(("entrypoint",), f"cannot load {config.entrypoint}: {type(exc).__name__}: {exc}")]
    try:
        signature = inspect.signature(func)
        signature.bind(*config.args, **_with_run_dir(signature, config.kwargs, "RUN_DIR"))
    except (TypeError, ValueError) as exc:
        where = ("args",) if "positional" in str(exc) else ("kwargs",)
        return [(where, f"the arguments do not bind to {func.__name__}{signature}: {exc}")]
    return []


def _with_run_dir(signature: inspect.Signature, kwargs: dict, run_dir) -> dict:
    if "run_dir" in signature.parameters and "run_dir" not in kwargs:
        return {**kwargs, "run_dir": run_dir}
    return kwargs


def run(config: PythonConfig, cluster: dict, run_dir: Path, console) -> dict:
    """Connects the engine, calls the function, shuts the engine down; the result as a dict."""
    from ownrun import engine

    folder = Path(os.getcwd())  # the runner started this process in the working dir
    func = load(config, folder)
    options = {k: cluster[k] for k in ("num_cpus", "object_store_memory") if cluster.get(k) is not None}
    if cluster.get("node_death_timeout") is not None:
        options["node_death_timeout"] = cluster["node_death_timeout"]
    if cluster.get("address"):
        engine.init(address=cluster["address"])
    else:
        engine.init(num_nodes=cluster.get("nodes", 1), **options)
    try:
        kwargs = _with_run_dir(inspect.signature(func), config.kwargs, str(run_dir))
        result = func(*config.args, **kwargs)
    finally:
        engine.shutdown()
    return result if isinstance(result, dict) else {"result": result}


KIND = AppKind(name="python", model=lambda: PythonConfig, runner="ownrun.apps.jobs.kinds.python:run",
               check=_check)
