"""Ray's older home of the test helpers (see ray/_common/test_utils.py); `client_test_enabled`
says Ray Client mode is off; `wait_for_pid_to_exit` polls the OS. Any other name is a marker (UsesRayInternals)."""

from ray._common.test_utils import (  # noqa: F401
    Semaphore,
    SignalActor,
    async_wait_for_condition,
    wait_for_condition,
)


def client_test_enabled() -> bool:
    return False


def wait_for_pid_to_exit(pid: int, timeout: float = 20) -> None:
    """Polls until process `pid` is gone; TimeoutError after `timeout` s (OS-level only)."""
    import os
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise TimeoutError(f"Timed out while waiting for process {pid} to exit.")


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from ray._internals import Marker, UsesRayInternals

    return Marker(f"{__name__}.{name}", UsesRayInternals)
