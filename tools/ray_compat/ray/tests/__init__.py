"""`ray.tests`: only `client_test_utils` (a test helper) is real; the rest are markers."""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    import importlib

    return importlib.import_module(f"{__name__}.{name}")
