"""The task bodies of benchmarks/rl.py, run in a child process through Ray Core's API, so the
same code runs on ownrun's engine and on Ray.

    python benchmarks/rl_bodies.py --system ownrun|ray --bench tiny|table4 [--count N] [--cpus C]

Prints one JSON line with the figures. Owns: the bodies (one CartPole-v1 episode pushing left;
1-4 Pendulum-v1 200-step rollouts of a fixed linear policy) and their timing loops — tiny
tasks (episodes/s, next to the same loop in this process) and the OSDI'18 Table 4 shape
(serial in this process, barrier rounds of one task per CPU, gather-as-finished with
`wait(num_returns=1)`). Imports only numpy and gymnasium at module load (and the system in
`start`), so it runs in a venv that has Ray but not ownrun; functions are shipped by value.
Does not: install anything or pick rounds (rl.py interleaves the children). How it fails: an
exception in a child exits non-zero with the traceback on stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def make_env(env_id: str):
    import gymnasium as gym

    return gym.make(env_id, disable_env_checker=True)


def cartpole_episode(seed: int) -> int:
    """One CartPole-v1 episode pushing left every step (about 10 steps, a fraction of a ms)."""
    env = make_env("CartPole-v1")
    env.reset(seed=seed)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = env.step(0)
        steps += 1
        done = terminated or truncated
    return steps


def pendulum_rollouts(count: int, seed: int) -> int:
    """`count` 200-step Pendulum-v1 rollouts of a fixed linear policy; returns env steps."""
    env = make_env("Pendulum-v1")
    w = np.array([[-1.0, 0.5, -0.2]])
    steps = 0
    for k in range(count):
        obs, _ = env.reset(seed=seed + k)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(np.clip(w @ obs, -2, 2))
            steps += 1
            done = terminated or truncated
    return steps


def start(system: str, cpus: int):
    """The system's module, initialized with `cpus` CPUs on this machine."""
    if system == "ray":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        return ray
    from ownrun import engine

    engine.init(num_cpus=cpus)
    return engine


def tiny(api, episodes: int) -> dict:
    episode = api.remote(cartpole_episode)
    api.get([episode.remote(k) for k in range(200)])  # warm workers and their imports
    t = time.perf_counter()  # the serial loop once the system's start-up is over
    for k in range(episodes):
        cartpole_episode(k)
    serial = episodes / (time.perf_counter() - t)
    t = time.perf_counter()
    api.get([episode.remote(k) for k in range(episodes)])
    rate = episodes / (time.perf_counter() - t)
    return {"episodes_per_s": rate, "serial_episodes_per_s": serial, "episode_ms": 1e3 / serial}


def table4(api, tasks: int, cpus: int) -> dict:
    counts = np.random.default_rng(0).integers(1, 5, size=tasks)
    rollout = api.remote(pendulum_rollouts)
    api.get([rollout.remote(1, 0) for _ in range(2 * cpus)])  # warm workers and imports
    t = time.perf_counter()  # the serial loop once the system's start-up is over
    steps = sum(pendulum_rollouts(int(c), k) for k, c in enumerate(counts))
    serial = steps / (time.perf_counter() - t)
    t = time.perf_counter()
    steps = 0
    for first in range(0, tasks, cpus):
        steps += sum(api.get([rollout.remote(int(c), first + i)
                              for i, c in enumerate(counts[first:first + cpus])]))
    barrier = steps / (time.perf_counter() - t)
    t = time.perf_counter()
    pending = [rollout.remote(int(counts[k]), k) for k in range(min(cpus, tasks))]
    submitted, steps = len(pending), 0
    while pending:
        ready, pending = api.wait(pending, num_returns=1)
        steps += api.get(ready[0])
        if submitted < tasks:
            pending.append(rollout.remote(int(counts[submitted]), submitted))
            submitted += 1
    gather = steps / (time.perf_counter() - t)
    return {"serial_steps_per_s": serial, "barrier_steps_per_s": barrier, "gather_steps_per_s": gather}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=("ownrun", "ray"), default="ownrun")
    parser.add_argument("--bench", choices=("tiny", "table4"), required=True)
    parser.add_argument("--count", type=int, default=2000, help="episodes (tiny) or tasks (table4)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    api = start(args.system, args.cpus)
    try:
        figures = (tiny(api, args.count) if args.bench == "tiny" else table4(api, args.count, args.cpus))
    finally:
        api.shutdown()
    print(json.dumps({"system": args.system, "bench": args.bench, **figures}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
