"""The owner's check of its sends to the Sink (apps/video/pipeline.py `_Owner.check`) on a
real cluster: finished sends leave in order up to the first unfinished one, and a failed
send ends the owner with a VideoError naming its video file and frame."""
import threading

import pytest
from ownrun import engine
from ownrun.apps.video import pipeline


@engine.remote(num_cpus=0)
def _send(index: int, fail: bool = False) -> bool:
    if fail:
        raise RuntimeError(f"the sink refused frame {index}")
    return True


@engine.remote(max_concurrency=2)
class _Gate:
    def __init__(self):
        self.opened = threading.Event()

    def wait(self) -> bool:
        return self.opened.wait(120)

    def open(self) -> None:
        self.opened.set()


def _owner() -> pipeline._Owner:
    job = pipeline.VideoJob("v0", "/videos/v0.mp4", fps=4.0, frames=10)
    return pipeline._Owner(job, None, pipeline.RunSettings(0.0, "video/test"), None, None)


def test_finished_sends_leave_in_order_up_to_the_first_unfinished_one(head_node):
    owner, gate = _owner(), _Gate.remote()
    before = [_send.remote(0), _send.remote(1)]
    after = _send.remote(3)
    engine.get([*before, after])
    owner.pending.extend([(0, before[0]), (1, before[1]), (2, gate.wait.remote()), (3, after)])
    owner.check()
    assert [index for index, _ in owner.pending] == [2, 3]  # frame 3 waits behind frame 2
    engine.get(gate.open.remote())
    owner.check(block=True)
    assert not owner.pending


def test_a_failed_send_ends_the_owner_naming_its_file_and_frame(head_node):
    owner = _owner()
    owner.pending.extend([(0, _send.remote(0)), (1, _send.remote(1, fail=True)), (2, _send.remote(2))])
    with pytest.raises(pipeline.VideoError, match=r"^/videos/v0\.mp4: frame 1: .*the sink refused frame 1"):
        owner.check(block=True)
