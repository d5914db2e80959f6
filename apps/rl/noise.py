"""The shared noise table of evolution strategies.

Owns `make_noise`, the task that draws the table (float32 standard normals from a seeded
generator, so re-running it rebuilds the same table: lineage reconstruction after its node
dies), and the reads workers and aggregators make from it: `perturbation(table, index, dim)`
(a zero-copy slice) and `weighted_sum` (sum of w_i * table[i:i+dim] in batches).

The table travels by ref: actors receive it as a top-level argument, so every worker of a
node maps the node's one shared-memory copy read-only. Pure numpy apart from the task.
"""

from __future__ import annotations

import time

import numpy as np
from ownrun import engine

from . import state

BATCH = 256  # perturbations stacked at once in weighted_sum


@engine.remote(num_cpus=0)  # the rollout workers' CPUs: they start (and then wait for the table) while it is drawn
def make_noise(size: int, seed: int, announce_key: str | None = None) -> np.ndarray:
    """`size` float32 standard normals; the same for the same seed."""
    if announce_key:
        state.announce(announce_key)
    table = np.random.default_rng(seed).standard_normal(size, dtype=np.float32)
    if announce_key:  # again, with when it was drawn (the driver's start-up profile)
        state.announce(announce_key, made_ts=time.time())
    return table


def perturbation(table: np.ndarray, index: int, dim: int) -> np.ndarray:
    return table[index:index + dim]


def weighted_sum(table: np.ndarray, indices: np.ndarray, weights: np.ndarray, dim: int) -> np.ndarray:
    """sum_i weights[i] * table[indices[i]:indices[i] + dim], in float64."""
    total = np.zeros(dim, np.float64)
    for start in range(0, len(indices), BATCH):
        idx = indices[start:start + BATCH]
        block = np.stack([table[i:i + dim] for i in idx]).astype(np.float64)
        total += weights[start:start + BATCH] @ block
    return total
