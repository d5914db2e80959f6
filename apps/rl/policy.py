"""Numpy policies for rollout workers, and the observation filter they share.

Owns `Policy` (a linear map or a tanh MLP over a flat parameter vector; discrete envs take the
argmax action, continuous ones the output clipped to the action bounds; used by ES) and
`ObsFilter` (running mean/std of observations with Chan's parallel merge: workers return the
statistics of what they saw, the owner merges them in a fixed order and broadcasts the result).
Pure numpy: no engine, no autodiff library, so rollout workers stay small and fork-safe.

Thread-safe for reading; `ObsFilter.merge` mutates (one owner thread).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .envs import EnvInfo

OBS_CLIP = 5.0  # normalized observations are clipped to +-5 std


@dataclass(frozen=True)
class Policy:
    """A deterministic policy `theta -> action` for ES."""

    info: EnvInfo
    kind: str = "linear"  # or "mlp"
    hidden: int = 32

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """(rows, cols) of each weight matrix; each has a bias of `rows` entries after it."""
        out = self.info.act_dim
        if self.kind == "linear":
            return [(out, self.info.obs_dim)]
        return [(self.hidden, self.info.obs_dim), (self.hidden, self.hidden), (out, self.hidden)]

    @property
    def num_params(self) -> int:
        return sum(r * c + r for r, c in self.shapes)

    def initial(self, rng: np.random.Generator) -> np.ndarray:
        """Small random weights (normc-like), zero biases."""
        parts = []
        for rows, cols in self.shapes:
            w = rng.standard_normal((rows, cols)).astype(np.float32)
            w *= 0.1 / np.sqrt(np.square(w).sum(axis=1, keepdims=True) + 1e-8)
            parts += [w.ravel(), np.zeros(rows, np.float32)]
        return np.concatenate(parts)

    def layers(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        out, k = [], 0
        for rows, cols in self.shapes:
            w = theta[k:k + rows * cols].reshape(rows, cols)
            k += rows * cols
            out.append((w, theta[k:k + rows]))
            k += rows
        return out

    def act(self, layers: list, obs: np.ndarray):
        x = obs
        for i, (w, b) in enumerate(layers):
            x = w @ x + b
            if i < len(layers) - 1:
                x = np.tanh(x)
        if self.info.discrete:
            return int(np.argmax(x))
        return np.clip(x, self.info.act_low, self.info.act_high)

    def batch_layers(self, thetas: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """The layers of several parameter vectors (rows of `thetas`): (W (n, rows, cols), b (n, rows))."""
        out, k = [], 0
        n = len(thetas)
        for rows, cols in self.shapes:
            w = thetas[:, k:k + rows * cols].reshape(n, rows, cols)
            k += rows * cols
            out.append((w, thetas[:, k:k + rows]))
            k += rows
        return out

    def act_batch(self, layers: list, obs: np.ndarray) -> np.ndarray:
        """Row i: the action of policy i (layers from `batch_layers`) for observation row i."""
        x = obs
        for i, (w, b) in enumerate(layers):
            x = np.matmul(w, x[:, :, None])[:, :, 0] + b
            if i < len(layers) - 1:
                x = np.tanh(x)
        if self.info.discrete:
            return np.argmax(x, axis=1)
        return np.clip(x, self.info.act_low, self.info.act_high)


@dataclass
class ObsFilter:
    """Running mean and std of observations (count, mean, sum of squared deviations)."""

    dim: int
    count: float = 0.0
    mean: np.ndarray = field(default=None)  # type: ignore[assignment]
    m2: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self):
        if self.mean is None:
            self.mean = np.zeros(self.dim, np.float64)
        if self.m2 is None:
            self.m2 = np.zeros(self.dim, np.float64)

    @classmethod
    def of(cls, observations: np.ndarray) -> ObsFilter:
        """The statistics of a batch of observations (rows)."""
        obs = np.asarray(observations, np.float64).reshape(-1, observations.shape[-1])
        mean = obs.mean(axis=0) if len(obs) else np.zeros(obs.shape[1])
        return cls(obs.shape[1], float(len(obs)), mean, ((obs - mean) ** 2).sum(axis=0))

    def merge(self, other: ObsFilter) -> None:
        """Adds another set of statistics (Chan et al.'s parallel algorithm)."""
        if other.count == 0:
            return
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.count / total)
        self.m2 = self.m2 + other.m2 + delta ** 2 * (self.count * other.count / total)
        self.count = total

    @property
    def std(self) -> np.ndarray:
        if self.count < 2:
            return np.ones(self.dim)
        return np.sqrt(np.maximum(self.m2 / (self.count - 1), 1e-4))

    def frozen(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) as float32, what workers normalize with during one iteration."""
        return self.mean.astype(np.float32), self.std.astype(np.float32)

    def state(self) -> tuple:
        return (self.dim, self.count, self.mean.copy(), self.m2.copy())

    @classmethod
    def from_state(cls, state: tuple) -> ObsFilter:
        dim, count, mean, m2 = state
        return cls(int(dim), float(count), np.array(mean, np.float64), np.array(m2, np.float64))


def normalize(obs: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return np.clip((obs - mean) / std, -OBS_CLIP, OBS_CLIP)
