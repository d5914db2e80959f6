"""Every option of `ownrun rl es` and `ownrun rl ppo`, defined once (pydantic v2 models).

Owns `EsConfig` and `PpoConfig`: names, defaults, constraints and help texts. A field's name is
its CLI flag with `-` for `_` (`episodes_per_iter` is `--episodes-per-iter`), so the CLI
(cli/rl.py) and job files (`[app.rl]` tables of `ownrun run`) build the same objects from
the same definitions; an unknown key is an error (`extra="forbid"`). Validation checks the
env id (closest ids or the missing extra, envs.py), the `--fail` spec and combinations that
cannot work (`node@` failures need 3+ nodes), and which failure kinds `--fail` takes
(the spec itself is apps/failures.py's `FailurePlan`).

Imports only pydantic and the standard library at module load (gymnasium loads when an env
id is checked). Thread-safe (immutable models). Failures: `pydantic.ValidationError` (cli/options.py
turns its first problem into the CLI's one-line error).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..failures import FailurePlan

FAIL_KINDS = ("worker", "node", "owner")


def parse_failure(text: str) -> FailurePlan:
    """`--fail KIND@Ns`: what to kill, N seconds after the first iteration started."""
    return FailurePlan.parse(text, FAIL_KINDS, "worker@5s")


class RunConfig(BaseModel):
    """Options both RL commands share: the env, the cluster, stopping, failures and output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str = Field("CartPole-v1", description="gymnasium env id (classic control; MuJoCo with ownrun[mujoco]).")
    workers: int | None = Field(None, ge=1, description="Rollout actors (default: the CPUs of the nodes that run them).")
    seed: int = Field(0, ge=0, description="Seed of the noise table, the plan of every iteration and the envs.")
    target: float | None = Field(None, description="Stop once the mean return reaches this "
                                                   "(default: the env's registered reward threshold).")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many env steps.")
    max_time: float | None = Field(None, gt=0, description="Stop after this many seconds of training.")
    nodes: int = Field(1, ge=1, description="Nodes of the embedded cluster.")
    num_cpus: float | None = Field(None, gt=0, description="CPUs per node (default: the CPUs this process may use: the machine's, fewer under a CPU quota or affinity mask).")
    fail: str | None = Field(None, description="Inject a failure: worker@Ns, node@Ns (needs --nodes 3+) or "
                                               "owner@Ns, N seconds after the first iteration started "
                                               "(none: no failure, as in a job's matrix).")
    checkpoint_every: int = Field(0, ge=0, description="Checkpoint the owner's state to engine.kv every K "
                                                       "iterations (0: off; a re-run owner starts over).")
    runs: str = Field("runs", description="Directory where run directories are written.")
    timeline: str | None = Field(None, description="Write a Chrome trace (ui.perfetto.dev) of the run to this file "
                                                   "(relative: inside the run directory, e.g. trace.json).",
                                 json_schema_extra={"metavar": "PATH"})
    live: bool = Field(True, description="Show a live view while running (plain lines when not a terminal).")

    @field_validator("env")
    @classmethod
    def _known_env(cls, value: str) -> str:
        from .envs import check_env_id

        return check_env_id(value)

    @field_validator("fail")
    @classmethod
    def _fail_spec(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() == "none":
            return None
        return str(parse_failure(value))

    @model_validator(mode="after")
    def _fail_needs_nodes(self):
        plan = self.failure_plan
        if plan is not None and plan.kind == "node" and self.nodes < 3:
            raise ValueError("--fail node@... needs --nodes 3 or more: node 0 runs the driver and the owner, "
                             "and the killed node's rollout workers restart on the others")
        return self

    @property
    def failure_plan(self) -> FailurePlan | None:
        return parse_failure(self.fail) if self.fail else None


class EsConfig(RunConfig):
    """`ownrun rl es`: evolution strategies (OpenAI ES, as Ray's ES example)."""

    noise_size: int = Field(25_000_000, ge=10_000, description="Float32 entries of the shared noise table "
                                                               "(25M = 100 MB).")
    # 16 episodes and sigma 0.2 (tuned on CartPole-v1 over seeds 0-4: 4-25 iterations, 6-73k env
    # steps to 475, mean 29k; 64 and 0.1 took 210k steps for seed 0) keep small problems fast;
    # larger problems want more episodes per iteration.
    episodes_per_iter: int = Field(16, ge=2, description="Episodes per iteration, run as antithetic pairs "
                                                         "(rounded up to even).")
    sigma: float = Field(0.2, gt=0, description="Noise standard deviation of the perturbations.")
    step_size: float = Field(0.05, gt=0, description="Adam step size.")
    l2: float = Field(0.005, ge=0, description="L2 weight decay coefficient.")
    policy: Literal["linear", "mlp"] = Field("linear", description="Policy: linear, or an MLP with --hidden "
                                                                     "tanh units.")
    hidden: int = Field(32, ge=1, description="Hidden units of the MLP policy.")
    eval_episodes: int = Field(4, ge=1, description="Episodes of the unperturbed policy per iteration; their "
                                                    "mean return is compared with --target.")
    aggregators: int = Field(0, ge=0, description="Aggregator actors between the rollout workers and the owner "
                                                  "(OSDI'18 aggregation tree; 0: the owner aggregates).")


# RLlib's tuned examples, for the options a PPO run leaves unset (see PpoConfig). Pendulum-v1
# has no registered reward threshold: it stops at its tuned example's -300. Minibatches of 128
# (RLlib's default) reached -300 at 129k/131k/135k env steps for seeds 0/1/2, where 64 took
# 192k/145k and twice the learner time per step (autograd's cost is per minibatch).
PPO_TUNED: dict[str, dict] = {
    "CartPole-v1": {"train_batch": 4000, "minibatch": 128, "sgd_epochs": 10, "lr": 3e-4, "gamma": 0.99,
                    "lam": 0.95, "entropy_coeff": 0.0, "hidden": 64, "max_steps": 200_000},
    "Pendulum-v1": {"train_batch": 2048, "minibatch": 128, "sgd_epochs": 6, "lr": 1e-3, "gamma": 0.95,
                    "lam": 0.1, "entropy_coeff": 0.0, "hidden": 64, "envs_per_worker": 8, "max_steps": 400_000,
                    "target": -300.0},
}


class PpoConfig(RunConfig):
    """`ownrun rl ppo`: PPO-style rollout collection. Options left unset take the env's tuned
    values from PPO_TUNED (RLlib's examples) where it has them, else the defaults below."""

    envs_per_worker: int = Field(4, ge=1, description="Envs each rollout actor steps together (a vector env).")
    fragment: int = Field(128, ge=8, description="Steps per env in one rollout fragment.")
    train_batch: int = Field(4000, ge=64, description="Env steps per training iteration.")
    minibatch: int = Field(128, ge=8, description="SGD minibatch size.")
    sgd_epochs: int = Field(10, ge=1, description="Passes over each batch.")
    lr: float = Field(3e-4, gt=0, description="Adam learning rate of the learner.")
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    clip: float = Field(0.2, gt=0, description="PPO clip parameter.")
    vf_coeff: float = Field(0.5, ge=0, description="Value loss coefficient.")
    entropy_coeff: float = Field(0.0, ge=0, description="Entropy bonus coefficient.")
    hidden: int = Field(64, ge=1, description="Units of each of the two tanh hidden layers.")
    sync: bool = Field(False, description="Barrier rounds instead of asynchronous scatter-gather.")

    @model_validator(mode="before")
    @classmethod
    def _tuned_defaults(cls, data):
        if isinstance(data, dict):
            env = data.get("env", "CartPole-v1")
            data = {**PPO_TUNED.get(env, {}), **{k: v for k, v in data.items() if v is not None}}
        return data

