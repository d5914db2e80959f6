"""Online video stabilization with one owner task per video (`ownrun video`, paper §2.6).

Modules: synthetic (shaky test clips with ground truth), stabilize (the per-frame OpenCV math,
pure), pipeline (tasks, actors and the per-video owner loop on the engine), failures (failure
injection and cluster set-up), report (statistics, run directory, table, CDF plot) and runner
(the driver behind the command). Imports nothing heavy: the engine and OpenCV load on use.
"""
