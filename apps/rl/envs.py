"""Which gymnasium environments the RL app runs, and what a policy needs to know about them.

Owns checking an env id up front (`check_env_id`: unknown ids get the closest registered ids,
MuJoCo ids without the `ownrun[mujoco]` extra get the install command), making envs, and
`EnvInfo` (observation size, action kind and size, bounds, registered reward threshold).
Rollout workers import this module, so it imports gymnasium only inside functions and never
imports the learner's autodiff library.

Thread-safe (no shared state besides gymnasium's registry, which is read only).
Failures: `EnvError` (a ValueError) with a one-line message.
"""

from __future__ import annotations

import difflib
import importlib.util
from dataclasses import dataclass

MUJOCO_HINT = "pip install 'ownrun[mujoco]'"
MUJOCO_MODULES = ("mujoco", "imageio")  # what gymnasium's MuJoCo envs import (the extra's packages)


class EnvError(ValueError):
    """The env id cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class EnvInfo:
    env_id: str
    obs_dim: int
    discrete: bool
    act_dim: int  # number of actions (discrete) or action vector size (continuous)
    act_low: tuple[float, ...] = ()
    act_high: tuple[float, ...] = ()
    reward_threshold: float | None = None


def check_env_id(env_id: str) -> str:
    """Returns `env_id` if gymnasium can make it here; raises EnvError naming the fix."""
    import gymnasium as gym

    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else "; e.g. CartPole-v1, Pendulum-v1, Acrobot-v1"
        raise EnvError(f"unknown env {env_id!r}{hint}")
    entry = str(gym.registry[env_id].entry_point)
    if "mujoco" in entry:
        missing = [name for name in MUJOCO_MODULES if importlib.util.find_spec(name) is None]
        if missing:
            raise EnvError(f"{env_id} needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                           f"not installed: {MUJOCO_HINT}")
    return env_id


def make(env_id: str):
    """The env with gymnasium's usual wrappers (time limit, order enforcing) but not its env
    checker, which only validates the first reset and step yet costs every step a call."""
    import gymnasium as gym

    return gym.make(env_id, disable_env_checker=True)


def make_vector(env_id: str, count: int):
    """`count` copies of the env stepped together in this process (gymnasium's SyncVectorEnv);
    an env whose episode ends is reset in the same step, its last observation in
    `info["final_obs"]`."""
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode

    return gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(count)],
                                    autoreset_mode=AutoresetMode.SAME_STEP)


def describe(env_id: str) -> EnvInfo:
    """Spaces and threshold of `env_id` (makes one env to read them)."""
    import gymnasium as gym

    env = make(env_id)
    try:
        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise EnvError(f"{env_id}: only flat Box observations are supported, got {obs_space}")
        threshold = gym.registry[env_id].reward_threshold
        if isinstance(act_space, gym.spaces.Discrete):
            return EnvInfo(env_id, obs_space.shape[0], True, int(act_space.n), reward_threshold=threshold)
        if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
            return EnvInfo(env_id, obs_space.shape[0], False, act_space.shape[0],
                           tuple(float(x) for x in act_space.low), tuple(float(x) for x in act_space.high),
                           threshold)
        raise EnvError(f"{env_id}: only Discrete or flat Box actions are supported, got {act_space}")
    finally:
        env.close()
