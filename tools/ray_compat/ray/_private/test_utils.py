"""Ray's older home of the test helpers (see ray/_common/test_utils.py); `client_test_enabled`
says Ray Client mode is off. Any other name is a marker (UsesRayInternals)."""

from ray._common.test_utils import (  # noqa: F401
    Semaphore,
    SignalActor,
    async_wait_for_condition,
    wait_for_condition,
)


def client_test_enabled() -> bool:
    return False


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from ray._internals import Marker, UsesRayInternals

    return Marker(f"{__name__}.{name}", UsesRayInternals)
