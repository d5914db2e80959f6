"""Call sites of created objects (engine/state/callsites.py): the user's frame, bounded."""

from ownrun.engine.state import callsites


def test_caller_is_the_first_frame_outside_the_engine():
    site = callsites.caller()
    assert site.startswith(__file__) and site.endswith("in test_caller_is_the_first_frame_outside_the_engine")


def test_recorded_sites_stay_bounded_dropping_objects_no_longer_recorded_first():
    sites = callsites.Callsites(limit=4)
    live = {b"a": 1, b"b": 1}
    sites.record([b"a", b"b", b"c"], "x.py:1 in f", live)
    sites.record([b"d", b"e"], "x.py:2 in g", live)
    assert set(sites.sites) == {b"a", b"b"} and sites.get(b"a") == "x.py:1 in f"
    sites.record([b"x"], None, live)  # no user frame: nothing recorded
    assert sites.get(b"x") is None

