"""The PPO actor-critic network, written once against an array module.

`PpoNet.forward(xp, theta, obs)` runs with `xp = numpy` in rollout workers (no autodiff
library there) and with `xp = autograd.numpy` in the learner, so both evaluate exactly the
same function of the flat parameter vector `theta`. Two tanh MLPs (policy and value, each
with two hidden layers); discrete envs get logits, continuous ones a mean and a learned
state-independent log std. Pure; thread-safe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .envs import EnvInfo


@dataclass(frozen=True)
class PpoNet:
    info: EnvInfo
    hidden: int = 64

    @property
    def layout(self) -> list[tuple[str, tuple[int, ...]]]:
        d, h, a = self.info.obs_dim, self.hidden, self.info.act_dim
        parts = []
        for net, out in (("pi", a), ("vf", 1)):
            parts += [(f"{net}0w", (d, h)), (f"{net}0b", (h,)), (f"{net}1w", (h, h)), (f"{net}1b", (h,)),
                      (f"{net}2w", (h, out)), (f"{net}2b", (out,))]
        if not self.info.discrete:
            parts.append(("log_std", (a,)))
        return parts

    @property
    def num_params(self) -> int:
        return sum(math.prod(shape) for _, shape in self.layout)

    def initial(self, rng: np.random.Generator) -> np.ndarray:
        """Orthogonal-ish init: scaled normals; small policy outputs, zero biases and log std."""
        parts = []
        for name, shape in self.layout:
            if name.endswith("w"):
                gain = 0.01 if name == "pi2w" else (1.0 if name == "vf2w" else math.sqrt(2))
                parts.append((rng.standard_normal(shape) * gain / math.sqrt(shape[0])).ravel())
            else:
                parts.append(np.zeros(math.prod(shape)))
        return np.concatenate(parts).astype(np.float64)

    def unpack(self, theta) -> dict:
        out, k = {}, 0
        for name, shape in self.layout:
            n = math.prod(shape)
            out[name] = theta[k:k + n].reshape(shape)
            k += n
        return out

    def forward(self, xp, theta, obs):
        """(logits or mean, value, log_std or None) for a batch of observations."""
        p = self.unpack(theta)
        outs = []
        for net in ("pi", "vf"):
            x = xp.tanh(xp.dot(obs, p[f"{net}0w"]) + p[f"{net}0b"])
            x = xp.tanh(xp.dot(x, p[f"{net}1w"]) + p[f"{net}1b"])
            outs.append(xp.dot(x, p[f"{net}2w"]) + p[f"{net}2b"])
        return outs[0], outs[1][..., 0], p.get("log_std")
