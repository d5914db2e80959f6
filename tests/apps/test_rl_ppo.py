"""PPO collection on one embedded cluster shared by the module, with small batches: async and sync scatter-gather
deliver every planned fragment once, a killed worker's fragment is re-run, and the learner's pieces compute what they should."""
import numpy as np
import pytest
from ownrun.apps.rl import config, envs, learner, ppo_model, report, runner


@pytest.fixture(scope="module", autouse=True)
def shared(cluster):
    return cluster


def _config(tmp_path, **overrides) -> config.PpoConfig:
    values = {"runs": str(tmp_path / "runs"), "live": False, "workers": 2, "envs_per_worker": 2,
              "fragment": 32, "train_batch": 256, "minibatch": 64, "sgd_epochs": 2, "max_steps": 1024}
    values.update(overrides)
    return config.PpoConfig(**values)


@pytest.mark.parametrize("sync", [False, True])
def test_ppo_collects_every_fragment_once(tmp_path, sync):
    summary = runner.run_ppo(_config(tmp_path, sync=sync))
    rows = report.load_run(summary["run_dir"])[1]
    assert summary["iterations"] == len(rows) == 4
    assert summary["env_steps"] == rows[-1]["env_steps"] >= 1024
    assert all(r["exact"] and r["fragments"] == r["fragments_unique"] >= 2 for r in rows)
    assert np.isfinite(rows[-1]["mean_return"])


def test_a_killed_ppo_worker_is_restarted_and_the_run_goes_on(tmp_path):
    summary = runner.run_ppo(_config(tmp_path, fail="worker@0s", max_steps=2048))
    (failure,) = summary["failures"]
    assert "error" not in failure, failure
    assert failure["replacement_pid"] != failure["pid"]
    rows = report.load_run(summary["run_dir"])[1]
    assert any(str(failure["replacement_pid"]) in str(r["worker_pids"]).split() for r in rows)
    assert all(r["exact"] for r in rows) and summary["owner_attempts"] == 1


def test_gae_matches_a_hand_computed_two_step_fragment():
    rewards = np.array([[1.0], [1.0]])
    values = np.array([[0.5], [0.5]])
    dones = np.array([[0.0], [1.0]])
    adv, targets = learner.advantages(rewards, values, dones, np.array([9.0]), gamma=0.9, lam=0.5)
    d1 = 1.0 - 0.5  # terminal: no bootstrap from last_values
    d0 = 1.0 + 0.9 * 0.5 - 0.5
    assert adv[1, 0] == pytest.approx(d1)
    assert adv[0, 0] == pytest.approx(d0 + 0.9 * 0.5 * d1)
    assert np.allclose(targets, adv + values)


def test_a_learner_update_improves_the_surrogate_of_its_batch():
    cfg = config.PpoConfig(sgd_epochs=4, minibatch=64, lr=1e-2)
    net = ppo_model.PpoNet(envs.describe("CartPole-v1"), 16)
    rng = np.random.default_rng(0)
    learn = learner.Learner(net, cfg, net.initial(rng))
    n = 256
    obs = rng.standard_normal((n, 4))
    actions = (obs[:, 0] > 0).astype(np.int64)  # advantage favours action = sign of obs[0]
    batch = {"obs": obs, "actions": actions, "logp": np.full(n, np.log(0.5)), "adv": np.ones(n),
             "targets": np.zeros(n)}
    before = learn.loss(learn.theta, obs, actions, batch["logp"], np.ones(n), batch["targets"])
    learn.update(batch, rng)
    after = learn.loss(learn.theta, obs, actions, batch["logp"], np.ones(n), batch["targets"])
    assert after < before
