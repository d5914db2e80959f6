"""`ray.exceptions`: ownrun's error types under Ray's names, where ownrun has the error.

Ray's names with no ownrun counterpart are absent (AttributeError names them), so a test
that expects one fails and is counted as "missing error type".
"""

from ownrun.engine import errors as _e

RayError = _e.EngineError
RayTaskError = _e.TaskError
TaskCancelledError = _e.TaskCancelledError
GetTimeoutError = _e.GetTimeoutError
RayActorError = _e.ActorDiedError
ActorDiedError = _e.ActorDiedError
WorkerCrashedError = _e.WorkerCrashedError
ObjectStoreFullError = _e.ObjectStoreFullError
ObjectLostError = _e.ObjectLostError
OwnerDiedError = _e.OwnerDiedError
ObjectFreedError = _e.ObjectFreedError
ObjectReconstructionFailedError = _e.ObjectReconstructionFailedError
LocalRayletDiedError = _e.LocalNodeDiedError
TaskUnschedulableError = _e.TaskUnschedulableError
TaskPlacementGroupRemoved = _e.TaskPlacementGroupRemoved


def __getattr__(name):
    raise AttributeError(f"module 'ray.exceptions' has no attribute {name!r} (ownrun has no such error type)")
