"""`ownrun rl`: bad inputs are one-line errors with exit code 2 (before any cluster starts),
the options come from the config models, and `ownrun rl ppo` + `ownrun rl plot` run end to end."""
import importlib.util
import json

import pytest
from ownrun.apps.rl import config
from ownrun.cli.main import app
from typer.testing import CliRunner

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), prog_name="ownrun")


@pytest.mark.parametrize(("args", "says"), [
    (["rl", "es", "--env", "CartPol-v1"], "closest: CartPole-v1"),
    (["rl", "es", "--env", "HalfCheetah-v5"], "pip install 'ownrun[mujoco]'"),
    (["rl", "es", "--workers", "0"], "--workers"),
    (["rl", "ppo", "--fail", "disk@3s"], "--fail must look like"),
    (["rl", "es", "--fail", "node@3s"], "--nodes 3"),
    (["rl", "ppo", "--bogus"], "No such option"),
])
def test_bad_rl_inputs_are_one_line_errors_with_exit_code_2(args, says):
    if "HalfCheetah-v5" in args and importlib.util.find_spec("mujoco") is not None:
        pytest.skip("the mujoco extra is installed")
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and says in lines[0], result.output


def test_every_config_field_is_a_flag_of_its_command():
    for command, model in (("es", config.EsConfig), ("ppo", config.PpoConfig)):
        text = invoke("rl", command, "--help").output
        for name in model.model_fields:
            assert "--" + name.replace("_", "-") in text, (command, name)


def test_ppo_takes_tuned_values_for_unset_options_and_keeps_the_given_ones():
    tuned = config.PpoConfig(env="Pendulum-v1")
    assert (tuned.gamma, tuned.lam) == (0.95, 0.1)
    assert config.PpoConfig(env="Pendulum-v1", gamma=0.9).gamma == 0.9


def test_ppo_on_pendulum_stops_at_rllibs_tuned_target_with_minibatches_of_128():
    tuned = config.PpoConfig(env="Pendulum-v1")
    assert (tuned.target, tuned.minibatch, tuned.max_steps) == (-300.0, 128, 400_000)
    assert config.PpoConfig(env="Pendulum-v1", target=-200).target == -200


def test_ppo_then_plot_from_the_command_line(tmp_path):
    # Unset flags take PPO's tuned CartPole values, given ones win; autograd stays in the owner
    # (a fresh cluster: on a shared one a reused worker process may have run an owner before).
    runs = tmp_path / "runs"
    result = invoke("rl", "ppo", "--max-steps", "512", "--train-batch", "256", "--fragment", "32",
                    "--minibatch", "64", "--sgd-epochs", "1", "--workers", "2", "--envs-per-worker", "2",
                    "--num-cpus", "2", "--gamma", "0.9", "--runs", str(runs), "--no-live",
                    "--timeline", "trace.json")
    assert result.exit_code == 0, result.output
    assert "run directory:" in result.output and "timeline:" in result.output
    (run_dir,) = runs.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["autograd_in_workers"] is False and summary["env_steps"] >= 512
    assert summary["config"]["gamma"] == 0.9 and summary["config"]["lam"] == 0.95  # given; tuned
    assert summary["config"]["live"] is False and summary["config"]["train_batch"] == 256
    trace = json.loads((run_dir / "trace.json").read_text())  # --timeline: the run's Chrome trace
    assert summary["timeline"] == str(run_dir / "trace.json")
    assert any(e.get("cat") == "task" and e["name"] == "ppo_owner" for e in trace["traceEvents"])
    png = tmp_path / "curves.png"
    result = invoke("rl", "plot", str(run_dir), "-o", str(png))
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 1000
    assert invoke("rl", "plot", str(tmp_path), "-o", str(png)).exit_code == 5


def test_an_rl_command_imports_no_other_commands_module():
    import subprocess
    import sys

    code = ("import sys\nfrom ownrun.cli.main import app\ntry:\n    app(['rl', 'es', '--help'])\n"
            "except SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if m.startswith('ownrun.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = out.strip().splitlines()[-1]
    assert "ownrun.cli.rl" in loaded
    for other in ("video", "bench", "logs", "run", "start", "state", "status"):
        assert f"'ownrun.cli.{other}'" not in loaded, loaded
