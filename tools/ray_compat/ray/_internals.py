"""Markers for the parts of Ray a test file may import that ownrun does not provide.

Two kinds, both imported through a meta-path finder placed *after* the normal finders (a
real module of this layer always wins):

* Ray internals (`ray._private.*`, `ray._raylet`, `ray.experimental.*`, `ray.util.state`,
  ...): the module imports, and every use of what it holds raises `UsesRayInternals`.
* Ray public modules ownrun has no counterpart for (`ray.util.metrics`, ...):
  likewise, raising `MissingInOwnrun`.

So a test file collects even if it imports such a module at its top, and exactly the tests
that *use* one fail, with an exception run.py classifies. Nothing here behaves like Ray.
"""

import importlib.abc
import importlib.machinery
import sys
import types

INTERNAL_PREFIXES = (
    "ray._private", "ray._raylet", "ray._common", "ray._config", "ray.experimental", "ray.core",
    "ray.util.state", "ray.util.client", "ray.runtime_env", "ray.autoscaler", "ray.dashboard",
    "ray.job_config", "ray.worker", "ray.tests", "ray.internal", "ray.state", "ray.cross_language",
    "ray.includes", "ray.air", "ray.train", "ray.data", "ray.serve", "ray.tune", "ray.rllib",
)
MISSING_PREFIXES = (
    "ray.util.metrics", "ray.util.annotations", "ray.util.collective",
    "ray.util.multiprocessing", "ray.util.iter", "ray.util.debug", "ray.util.accelerators",
)


class UsesRayInternals(Exception):
    """A test used a Ray internal (a module ownrun has no reason to have)."""


class MissingInOwnrun(Exception):
    """A test used a Ray public module ownrun has no counterpart for."""


class Marker:
    """Stands for `path`; any use raises `error`. Attributes are markers for `path.attr`."""

    def __init__(self, path: str, error: type):
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_error", error)

    def _raise(self, *args, **kwargs):
        raise self._error(f"{self._path} ({'Ray internal' if self._error is UsesRayInternals else 'not in ownrun'})")

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return Marker(f"{self._path}.{name}", self._error)

    __call__ = __bool__ = __iter__ = __len__ = __getitem__ = __contains__ = __int__ = __float__ = _raise
    __enter__ = __index__ = __hash__ = __eq__ = __lt__ = __gt__ = __add__ = __mro_entries__ = _raise

    def __repr__(self):
        return f"<marker {self._path}>"


class _MarkerModule(types.ModuleType):
    def __init__(self, name: str, error: type):
        super().__init__(name)
        self.__path__ = []  # a package: its submodules are markers too
        self._error = error

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return Marker(f"{self.__name__}.{name}", self._error)


def _kind(fullname: str):
    for prefixes, error in ((INTERNAL_PREFIXES, UsesRayInternals), (MISSING_PREFIXES, MissingInOwnrun)):
        if any(fullname == p or fullname.startswith(p + ".") for p in prefixes):
            return error
    return None


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        error = _kind(fullname)
        if error is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        return _MarkerModule(spec.name, _kind(spec.name))

    def exec_module(self, module):
        pass


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
