"""The RL app's ES path on one embedded cluster shared by the module (runs on a process's
engine leave it up) and real gymnasium envs: CartPole reaches a target with a fixed seed, a
killed rollout worker's iteration completes with exactly the planned pairs, a killed owner
resumes from its checkpoint or starts over without one. A 400 KB noise table and a few
iterations of CartPole keep each run to a few seconds."""
import csv
import json

import numpy as np
import pytest
from ownrun.apps.rl import config, es, report, runner

TABLE = 100_000  # 400 KB


@pytest.fixture(scope="module", autouse=True)
def shared(cluster):
    return cluster


def _config(tmp_path, **overrides) -> config.EsConfig:
    values = {"noise_size": TABLE, "runs": str(tmp_path / "runs"), "live": False, "workers": 2,
              "episodes_per_iter": 16, "eval_episodes": 2, "max_steps": 200_000, "seed": 0}
    values.update(overrides)
    return config.EsConfig(**values)


def _rows(summary) -> list[dict]:
    return report.load_run(summary["run_dir"])[1]


def test_es_reaches_a_target_with_a_fixed_seed_and_writes_the_run_directory(tmp_path):
    summary = runner.run_es(_config(tmp_path, target=200))
    assert summary["reached"] and summary["target"] == 200
    assert summary["iterations"] <= 25
    rows = _rows(summary)
    assert [r["iteration"] for r in rows] == list(range(1, summary["iterations"] + 1))
    assert rows[-1]["eval_return"] >= 200
    assert all(r["exact"] and r["pairs_received"] == r["pairs_unique"] == 8 for r in rows)
    on_disk = json.loads((tmp_path / "runs" / next((tmp_path / "runs").iterdir()).name / "summary.json").read_text())
    assert on_disk["env_steps"] == summary["env_steps"] == rows[-1]["env_steps"]
    with open(f"{summary['run_dir']}/iterations.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == summary["iterations"]
    again = runner.run_es(_config(tmp_path, target=200))  # same seed, same run
    assert [r["eval_return"] for r in _rows(again)] == [r["eval_return"] for r in rows]


def test_a_killed_rollout_worker_is_restarted_and_its_iteration_keeps_exactly_the_planned_pairs(tmp_path):
    # Killed as the first iteration starts: that iteration (or, when its result was already on its
    # way, the next) runs on the restarted actor; CartPole's 475 takes a few more.
    summary = runner.run_es(_config(tmp_path, fail="worker@0s", episodes_per_iter=32))
    (failure,) = summary["failures"]
    assert "error" not in failure, failure
    assert failure["replacement_pid"] != failure["pid"]
    rows = _rows(summary)
    killed_in = [r for r in rows if str(failure["pid"]) in str(r["worker_pids"]).split()]
    restarted_in = [r for r in rows if str(failure["replacement_pid"]) in str(r["worker_pids"]).split()]
    assert restarted_in, "no iteration used the restarted worker"
    assert all(r["exact"] and r["pairs_received"] == r["pairs_unique"] == r["pairs_planned"] == 16 for r in rows)
    assert killed_in + restarted_in == rows  # the old process until the kill, its replacement after
    assert summary["reached"] and summary["owner_attempts"] == 1
    assert restarted_in[0]["iteration"] in (failure["iteration"], failure["iteration"] + 1)


def test_a_killed_owner_resumes_from_its_checkpoint_with_its_iteration_and_weights(tmp_path):
    cfg = _config(tmp_path, fail="owner@1s", checkpoint_every=2, target=1e9, max_steps=None, max_time=6,
                  episodes_per_iter=4, eval_episodes=1)
    summary = runner.run_es(cfg)
    (failure,) = summary["failures"]
    assert "error" not in failure, failure
    assert summary["owner_attempts"] == 2
    rows = _rows(summary)
    first = [r for r in rows if r["attempt"] == 1]
    second = [r for r in rows if r["attempt"] == 2]
    resumed = summary["resumed_from"]
    assert resumed > 0 and resumed % 2 == 0, "the re-run owner did not resume from a checkpoint"
    assert second[0]["iteration"] == resumed + 1
    assert failure["iterations_redone"] == first[-1]["iteration"] - resumed <= 2
    # Same seed, same plan: the re-run's iterations repeat the first attempt's (same env steps).
    by_iteration = {r["iteration"]: r for r in first}
    for r in second:
        if r["iteration"] in by_iteration:
            assert r["env_steps"] == by_iteration[r["iteration"]]["env_steps"]
            assert r["mean_return"] == pytest.approx(by_iteration[r["iteration"]]["mean_return"])


def test_without_checkpoints_a_killed_owner_starts_over(tmp_path):
    # Enough steps that a warm cluster cannot finish them before the kill at 0.2 s (8,000 took
    # about 0.2 s once the engine got faster); a loaded machine only makes the kill land earlier.
    summary = runner.run_es(_config(tmp_path, fail="owner@0.2s", target=1e9, max_steps=40000,
                                    episodes_per_iter=4, eval_episodes=1))
    assert summary["owner_attempts"] == 2 and summary["resumed_from"] == 0
    second = [r for r in _rows(summary) if r["attempt"] == 2]
    assert second[0]["iteration"] == 1


def test_checkpoint_state_round_trips_into_an_owner():
    cfg = config.EsConfig(noise_size=TABLE)
    from ownrun.apps.rl import envs

    info = envs.describe("CartPole-v1")
    a = es.EsOwner(cfg, info, TABLE)
    a.plan(2)
    a.adam.step(a.theta, np.ones_like(a.theta))
    b = es.EsOwner(cfg, info, TABLE)
    b.restore(a.checkpoint())
    assert np.array_equal(a.theta, b.theta) and a.adam.t == b.adam.t
    assert [c.indices.tolist() for c in a.plan(2)] == [c.indices.tolist() for c in b.plan(2)]


def test_centered_ranks_span_minus_half_to_half_and_follow_the_order():
    x = np.array([[3.0, -1.0], [10.0, 0.0]])
    ranks = es.centered_ranks(x)
    assert ranks.min() == -0.5 and ranks.max() == 0.5
    assert list(np.argsort(ranks.ravel())) == list(np.argsort(x.ravel()))


def test_an_aggregation_tree_gives_the_iterations_the_owner_alone_gives(tmp_path):
    # The same seed with 2 aggregator actors between the workers and the owner (OSDI'18's tree):
    # they combine the workers' results and compute slices of the gradient from the shared
    # table; only the order of a float64 sum differs, so the iterations are the same.
    alone = _rows(runner.run_es(_config(tmp_path, target=1e9, max_steps=1500)))
    tree = _rows(runner.run_es(_config(tmp_path, target=1e9, max_steps=1500, aggregators=2)))
    assert len(tree) == len(alone) >= 3
    assert all(r["exact"] and r["pairs_received"] == r["pairs_unique"] == 8 for r in tree)
    assert [r["env_steps"] for r in tree] == [r["env_steps"] for r in alone]
    assert [r["mean_return"] for r in tree] == pytest.approx([r["mean_return"] for r in alone])


def test_a_rollout_worker_starts_before_its_boxed_noise_table_is_drawn_and_fetches_it_for_its_first_call():
    import uuid

    from ownrun import engine

    gate = f"rl-test/gate/{uuid.uuid4().hex}"

    @engine.remote(num_cpus=0)
    def gated_table(key: str):
        import time

        while engine.kv.get(key) is None:  # held until the test opens the gate
            time.sleep(0.01)
        return np.random.default_rng(0).standard_normal(TABLE, dtype=np.float32)

    table_ref = gated_table.remote(gate)
    worker = es.RemoteEsWorker.options(num_cpus=0).remote("CartPole-v1", "linear", 32, [table_ref], 0.2)
    try:
        assert engine.get(worker.ready.remote(), timeout=60)
        assert engine.wait([table_ref], timeout=0)[0] == []  # constructed before the table exists
        engine.kv.put(gate, b"open")
        chunk = es.Chunk(0, np.array([0, 7]), np.array([1, 2]), np.array([3]))
        bundle = (np.zeros(10, np.float32), np.zeros(4), np.ones(4))
        out = engine.get(worker.rollouts.remote(bundle, chunk), timeout=60)
        assert list(out["indices"]) == [0, 7] and out["returns"].shape == (2, 2)
    finally:
        engine.kill(worker)
        engine.kv.delete(gate)
