"""`kind = "rl"`: `[app.rl]` will hold the options of `ownrun rl es|ppo` (EsConfig / PpoConfig
in apps/rl/config.py, the models that CLI builds its flags from).

The RL app (issue 9) is not part of this installation yet: until ownrun.apps.rl.config exists,
a job of this kind fails validation with one problem saying so. Wiring it is a registry entry
like kinds/video.py: the model for `[app.rl]`, the managed cluster options (nodes, num_cpus,
runs, live), the runner and the learning-curve plot.
"""
from __future__ import annotations

import importlib.util

from . import AppKind, AppNotInstalled


def _model():
    if importlib.util.find_spec("ownrun.apps.rl.config") is None:
        raise AppNotInstalled("the rl app is not installed (no ownrun.apps.rl.config in this ownrun)")
    raise AppNotInstalled("the rl app is installed but not wired into `ownrun run` yet "
                          "(apps/jobs/kinds/rl.py)")


KIND = AppKind(name="rl", model=_model, runner="")  # never run: _model() raises
