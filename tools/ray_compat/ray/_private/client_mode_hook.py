"""`client_mode_should_convert()`: whether Ray Client mode is on - never here (Ray's test
files call it at import time, in skipif decorators). Any other name is a marker."""


def client_mode_should_convert() -> bool:
    return False


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from ray._internals import Marker, UsesRayInternals

    return Marker(f"{__name__}.{name}", UsesRayInternals)
