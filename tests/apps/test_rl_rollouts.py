"""The RL app's pure parts, without an engine: lockstep batches of episodes in a rollout worker
are the episodes run one by one, the default ES settings solve CartPole-v1 for a fixed seed,
and a MuJoCo env without the extra's packages is a one-line error naming them."""
import importlib.util

import numpy as np
import pytest
from ownrun.apps.rl import config, envs, es, noise
from ownrun.apps.rl.policy import ObsFilter, Policy, normalize


def _one_by_one(env_id: str, policy: Policy, theta, mean, std, seed: int) -> tuple[float, int, list]:
    env = envs.make(env_id)
    obs, _ = env.reset(seed=seed)
    layers, total, steps, seen = policy.layers(theta), 0.0, 0, []
    while True:
        seen.append(obs)
        obs, reward, terminated, truncated, _ = env.step(policy.act(layers, normalize(obs, mean, std)))
        total, steps = total + float(reward), steps + 1
        if terminated or truncated:
            return total, steps, seen


@pytest.mark.parametrize(("env_id", "kind"), [("CartPole-v1", "linear"), ("Pendulum-v1", "mlp")])
def test_a_lockstep_batch_runs_the_same_episodes_as_one_by_one(env_id, kind):
    info = envs.describe(env_id)
    policy = Policy(info, kind, hidden=8)
    rng = np.random.default_rng(3)
    thetas = (policy.initial(rng) + rng.standard_normal((5, policy.num_params)).astype(np.float32))
    mean = rng.standard_normal(info.obs_dim).astype(np.float32) * 0.1
    std = np.full(info.obs_dim, 1.5, np.float32)
    seeds = [11, 11, 12, 13, 14]
    returns, lengths, seen = es.run_batch([envs.make(env_id) for _ in seeds], policy, thetas, mean, std, seeds, 3)
    singles = [_one_by_one(env_id, policy, t, mean, std, s) for t, s in zip(thetas, seeds, strict=True)]
    assert np.allclose(returns, [r for r, _, _ in singles]) and list(lengths) == [n for _, n, _ in singles]
    observed = np.concatenate([np.asarray(o) for _, _, o in singles[:3]])
    assert len(seen) == len(observed)  # only the first 3 episodes' observations, every step of them
    expected = ObsFilter.of(observed)
    got = ObsFilter.of(seen)
    assert np.allclose(got.mean, expected.mean) and np.allclose(got.m2, expected.m2)


def test_the_default_es_settings_solve_cartpole_for_seed_0_within_20_iterations_and_60k_steps():
    # 16 episodes per iteration, sigma 0.2: 16 iterations, 48k env steps (64 and 0.1 took ~210k)
    cfg = config.EsConfig(noise_size=1_000_000, live=False)
    info = envs.describe(cfg.env)
    table = np.random.default_rng(cfg.seed).standard_normal(cfg.noise_size, dtype=np.float32)
    owner = es.EsOwner(cfg, info, len(table))
    worker = es.EsWorker(cfg.env, cfg.policy, cfg.hidden, table, cfg.sigma)
    solved = False
    while not solved and owner.iteration < 20:
        gathered = es.combine([worker.rollouts((owner.theta, *owner.filter.frozen()), c) for c in owner.plan(2)])
        weights = es.gradient_weights(gathered["returns"])
        owner.update(gathered, noise.weighted_sum(table, gathered["indices"], weights, owner.policy.num_params))
        solved = gathered["eval_returns"].mean() >= info.reward_threshold == 475
    assert solved, f"not solved in {owner.iteration} iterations ({owner.steps} env steps)"
    assert owner.steps <= 60_000


def test_a_mujoco_env_without_imageio_names_the_missing_package_and_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "mujoco" else None if name == "imageio" else real(name, *a))
    with pytest.raises(envs.EnvError) as caught:
        envs.check_env_id("Hopper-v5")
    message = str(caught.value)
    assert "imageio" in message and "mujoco" not in message.split("needs")[1].split(",")[0]
    assert "pip install 'ownrun[mujoco]'" in message and "\n" not in message
