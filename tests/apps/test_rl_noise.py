"""The ES noise table on clusters of their own: one shared-memory copy per node that workers
map without copying, and a run that loses the table's node (`--fail node@Ns`) still reaches
its target."""
from ownrun.apps.rl import config, report, runner


def test_the_noise_table_is_stored_once_per_node_and_workers_do_not_copy_it(tmp_path):
    size = 20_000_000  # 76 MiB, mapped by 3 workers (each has ~20 MiB of its own)
    summary = runner.run_es(config.EsConfig(noise_size=size, workers=3, max_steps=1, num_cpus=2, live=False,
                                            runs=str(tmp_path / "runs"), episodes_per_iter=4))
    table = summary["noise_table"]
    mib = size * 4 / 2**20
    assert table["nodes"] == 1
    assert 0.9 * mib <= table["store_growth_mib"] <= 1.2 * mib
    assert table["worker_private_mib"] < 0.5 * mib


def test_a_run_that_loses_the_noise_tables_node_reaches_its_target(tmp_path):
    summary = runner.run_es(config.EsConfig(noise_size=100_000, nodes=3, num_cpus=1, workers=2, fail="node@0s",
                                            target=475, max_steps=300_000, episodes_per_iter=16, eval_episodes=2,
                                            live=False, runs=str(tmp_path / "runs")))
    (failure,) = summary["failures"]
    assert "error" not in failure, failure
    assert "noise table" in failure["target"]  # the node the table was made on (the injector read it there)
    assert summary["reached"] and summary["owner_attempts"] == 1 and summary["all_exact"]
    after = [r for r in report.load_run(summary["run_dir"])[1] if r["ts"] > failure["ts"]]
    assert after and after[-1]["eval_return"] >= 475, "training did not go on after the node died"
    # Either recovery is fine: lineage re-runs the noise task (it announces itself again, from
    # another node), or the owner pins a copy that survived (the owner's own, or a worker node's).
    print("noise table after the node kill:", "rebuilt from lineage" if failure.get("table_rebuilt")
          else "a surviving copy", "; made on", failure["node_id"], "then", summary["noise_table"]["made_on"])
