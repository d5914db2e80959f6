"""`ray._common`: Ray internals. Only `test_utils` (test helpers) is real; every other
name is a marker that raises UsesRayInternals when used (ray/_internals.py)."""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    import importlib

    return importlib.import_module(f"{__name__}.{name}")  # a real module, or a marker module
