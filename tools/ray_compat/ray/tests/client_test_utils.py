"""Ray's helper for tests that also run under Ray Client: outside client mode it is the
plain SignalActor (ray/_common/test_utils.py)."""


def create_remote_signal_actor(ray):
    from ray._common.test_utils import SignalActor

    return SignalActor
