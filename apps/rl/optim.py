"""Adam on a flat parameter vector, with its state as a tuple for checkpoints (ES and PPO).

Pure numpy. Not thread-safe (one owner thread updates it).
"""

from __future__ import annotations

import numpy as np


class Adam:
    """`step(theta, grad)` descends `grad`; `state()` / `load()` for checkpoints."""

    def __init__(self, dim: int, step_size: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.step_size, self.beta1, self.beta2, self.eps = step_size, beta1, beta2, eps
        self.t = 0
        self.m = np.zeros(dim, np.float64)
        self.v = np.zeros(dim, np.float64)

    def step(self, theta: np.ndarray, grad: np.ndarray) -> np.ndarray:
        self.t += 1
        a = self.step_size * np.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        return (theta - a * self.m / (np.sqrt(self.v) + self.eps)).astype(theta.dtype)

    def state(self) -> tuple:
        return (self.t, self.m.copy(), self.v.copy())

    def load(self, state: tuple) -> None:
        self.t, self.m, self.v = int(state[0]), np.array(state[1]), np.array(state[2])
