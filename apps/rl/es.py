"""Evolution strategies on the engine: the owner task, its rollout workers and aggregators.

One iteration of the owner (`es_owner`, one task per training run):
1. put the weights and the observation filter's (mean, std) once (`engine.put`);
2. plan the iteration from the run's RNG: one noise index and env seed per antithetic pair,
   seeds for the evaluation episodes, split into one `Chunk` per rollout worker;
3. call `EsWorker.rollouts(bundle, chunk)` on every worker: it runs theta + sigma*eps and
   theta - sigma*eps for each planned index (all of its chunk's episodes in lockstep: one
   batched policy evaluation per step, `run_batch`) and returns only indices, returns, lengths
   and the statistics of the observations it saw;
4. gather (through `--aggregators K` actors when K > 0, the OSDI'18 aggregation tree: each
   borrows its workers' result refs and returns one summary; later each computes its slice of
   the gradient from the shared noise table);
5. check the pairs received are exactly the planned ones (none lost, none twice), then
   centered ranks, gradient, Adam, merge the filter statistics in worker order;
6. send the iteration's row to the driver's Recorder; every K iterations checkpoint.

Workers get the noise table's ref in a list and fetch it in their first call, so they start
while the noise task is still drawing it. Rollout workers are actors with `max_restarts=-1, max_task_retries=-1`: a killed worker is
restarted and its call re-run with the same chunk (one whose restart fails for good is
replaced by a new actor, when the owner aggregates), and rollouts are deterministic given
(weights, filter, chunk), so the iteration is the one planned. A re-run owner resumes from the
checkpoint in engine.kv (or starts over), so a fixed `--seed` reproduces a run.
On one node the driver first runs `warm_up`, so the owner and workers fork with this module
and gymnasium already imported. Pure numpy in workers; the owner runs in an engine worker. Failures: an env error in a worker
ends the owner task with that error; engine errors propagate to the driver.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass

import numpy as np
from ownrun import engine

from . import envs, memory, noise, state
from .config import EsConfig
from .optim import Adam
from .policy import ObsFilter, Policy, normalize


# ---- the math (pure) ---------------------------------------------------------------------
def centered_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of x scaled to [-0.5, 0.5] (fitness shaping of OpenAI ES)."""
    ranks = np.empty(x.size, np.float64)
    ranks[x.ravel().argsort(kind="stable")] = np.arange(x.size)
    return ranks.reshape(x.shape) / max(1, x.size - 1) - 0.5


@dataclass(frozen=True)
class Chunk:
    """One worker's share of an iteration: antithetic pairs and evaluation episodes."""

    worker: int
    indices: np.ndarray  # noise index of each pair
    seeds: np.ndarray  # env seed of each pair (both halves use it)
    eval_seeds: np.ndarray


def plan_iteration(rng: np.random.Generator, pairs: int, workers: int, dim: int, table_size: int,
                   eval_episodes: int) -> list[Chunk]:
    indices = rng.integers(0, table_size - dim + 1, size=pairs)
    seeds = rng.integers(0, 2**31 - 1, size=pairs)
    eval_seeds = rng.integers(0, 2**31 - 1, size=eval_episodes)
    parts = zip(np.array_split(indices, workers), np.array_split(seeds, workers),
                np.array_split(eval_seeds, workers), strict=True)
    return [Chunk(k, i, s, e) for k, (i, s, e) in enumerate(parts)]


def gradient_weights(returns: np.ndarray) -> np.ndarray:
    """Per pair: rank(theta + sigma eps) - rank(theta - sigma eps), divided by the episode count."""
    ranks = centered_ranks(returns)
    return (ranks[:, 0] - ranks[:, 1]) / returns.size


# ---- actors ------------------------------------------------------------------------------
def run_batch(envs_: list, policy: Policy, thetas: np.ndarray, mean, std, seeds, observed: int) -> tuple:
    """Runs one episode per row of `thetas` (env i reset with seeds[i]) in lockstep: one batched
    policy evaluation per step for all episodes, then each unfinished env steps. Returns
    (returns, lengths, the observations the first `observed` episodes saw). The same episodes as
    running them one by one: each env only ever sees its own policy's actions."""
    count = len(thetas)
    layers = policy.batch_layers(thetas)
    obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs_, seeds, strict=True)])
    returns, lengths = np.zeros(count), np.zeros(count, np.int64)
    running = list(range(count))
    seen = []
    while running:
        if running[0] < observed:
            seen.append(obs[[k for k in running if k < observed]])
        actions = policy.act_batch(layers, normalize(obs, mean, std))
        if policy.info.discrete:  # Python ints: a numpy int costs Discrete.contains a slow dtype check per step
            actions = actions.tolist()
        still = []
        for k in running:
            obs[k], reward, terminated, truncated, _ = envs_[k].step(actions[k])
            returns[k] += reward
            lengths[k] += 1
            if not (terminated or truncated):
                still.append(k)
        running = still
    return returns, lengths, (np.concatenate(seen) if seen else obs[:0])


class EsWorker:
    """Runs antithetic pairs of one iteration's chunk; holds a read-only view of the noise table.

    `table`: the table, or `[its ref]`. A ref inside a list is not waited for before the
    constructor runs, so the worker starts while the noise task is still drawing the table; its
    first `rollouts` fetches it (zero-copy from the node's store) and announces when it had it."""

    def __init__(self, env_id: str, policy_kind: str, hidden: int, table: np.ndarray | list, sigma: float,
                 announce_key: str | None = None):
        info = envs.describe(env_id)
        self.env_id = env_id
        self.envs: list = []  # one per episode of a chunk, made as needed and kept
        self.policy = Policy(info, policy_kind, hidden)
        self._table = table if isinstance(table, np.ndarray) else None
        self._table_box = None if isinstance(table, np.ndarray) else table
        self.sigma = sigma
        self.announce_key = announce_key
        if announce_key:
            state.announce(announce_key)

    @property
    def table(self) -> np.ndarray:
        if self._table is None:
            self._table = engine.get(self._table_box[0])
            if self.announce_key:
                state.announce(self.announce_key, table_ts=time.time())
        return self._table

    def rollouts(self, bundle: tuple, chunk: Chunk) -> dict:
        """theta + sigma*eps and theta - sigma*eps for each planned index (both halves on the pair's
        env seed), then the unperturbed theta on each evaluation seed, all in one lockstep batch."""
        theta, mean, std = bundle
        dim = self.policy.num_params
        pairs = len(chunk.indices)
        eps = np.array([self.sigma * noise.perturbation(self.table, int(i), dim) for i in chunk.indices],
                       theta.dtype).reshape(pairs, dim)
        thetas = np.concatenate([np.stack([theta + eps, theta - eps], axis=1).reshape(2 * pairs, dim),
                                 np.repeat(theta[None, :], len(chunk.eval_seeds), axis=0)])
        seeds = np.concatenate([np.repeat(chunk.seeds, 2), chunk.eval_seeds])
        while len(self.envs) < len(thetas):
            self.envs.append(envs.make(self.env_id))
        returns, lengths, seen = run_batch(self.envs[:len(thetas)], self.policy, thetas, mean, std, seeds, 2 * pairs)
        stats = ObsFilter.of(seen) if len(seen) else ObsFilter(len(mean))
        return {"indices": chunk.indices, "returns": returns[:2 * pairs].reshape(pairs, 2),
                "lengths": lengths[:2 * pairs].reshape(pairs, 2),
                "eval_returns": returns[2 * pairs:], "eval_lengths": lengths[2 * pairs:],
                "filter": stats.state(), "pids": [os.getpid()]}

    def ready(self) -> int:
        return os.getpid()


class EsAggregator:
    """A node of the aggregation tree: combines some workers' results, computes a gradient slice."""

    def __init__(self, table: np.ndarray, dim: int):
        self.table = table
        self.dim = dim

    def summarize(self, refs: list) -> dict:
        return combine(engine.get(refs))

    def gradient(self, indices: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return noise.weighted_sum(self.table, indices, weights, self.dim)


def combine(results: list[dict]) -> dict:
    """Concatenates worker results in order; merges their filter statistics in the same order."""
    stats = ObsFilter.from_state(results[0]["filter"])
    for r in results[1:]:
        stats.merge(ObsFilter.from_state(r["filter"]))
    cat = {key: np.concatenate([r[key] for r in results])
           for key in ("indices", "returns", "lengths", "eval_returns", "eval_lengths")}
    return {**cat, "filter": stats.state(), "pids": [p for r in results for p in r["pids"]]}


@engine.remote
def warm_up(env_id: str) -> int:
    """Imports what the owner and rollout workers run (this module, gymnasium, the env's module)
    and makes the env once. When a task ends, its node's zygote imports the modules the task
    needed, so the owner and workers forked after this one start with them loaded instead of
    each importing them (on a fresh cluster, ~1 s of a loaded 2-core machine's time)."""
    envs.describe(env_id)
    return os.getpid()


RemoteEsWorker = engine.remote(max_restarts=-1, max_task_retries=-1)(EsWorker)
RemoteEsAggregator = engine.remote(max_restarts=-1, max_task_retries=-1)(EsAggregator)


# ---- the owner ---------------------------------------------------------------------------
class EsOwner:
    """State of one ES training run, checkpointable: weights, Adam, filter, RNG, counters."""

    def __init__(self, config: EsConfig, info: envs.EnvInfo, table_size: int):
        self.config = config
        self.policy = Policy(info, config.policy, config.hidden)
        self.table_size = table_size
        self.rng = np.random.default_rng(config.seed)
        self.theta = self.policy.initial(self.rng)
        self.adam = Adam(self.policy.num_params, config.step_size)
        self.filter = ObsFilter(info.obs_dim)
        self.iteration = 0
        self.steps = 0
        self.episodes = 0

    def checkpoint(self) -> dict:
        return {"iteration": self.iteration, "theta": self.theta.copy(), "adam": self.adam.state(),
                "filter": self.filter.state(), "rng": self.rng.bit_generator.state, "steps": self.steps,
                "episodes": self.episodes}

    def restore(self, cp: dict) -> None:
        self.iteration, self.steps, self.episodes = cp["iteration"], cp["steps"], cp["episodes"]
        self.theta = np.array(cp["theta"])
        self.adam.load(cp["adam"])
        self.filter = ObsFilter.from_state(cp["filter"])
        self.rng.bit_generator.state = cp["rng"]

    def plan(self, workers: int) -> list[Chunk]:
        pairs = (self.config.episodes_per_iter + 1) // 2
        return plan_iteration(self.rng, pairs, workers, self.policy.num_params, self.table_size,
                              self.config.eval_episodes)

    def update(self, gathered: dict, gradient: np.ndarray) -> None:
        g = -gradient + self.config.l2 * self.theta
        self.theta = self.adam.step(self.theta, g)
        self.filter.merge(ObsFilter.from_state(gathered["filter"]))
        self.iteration += 1
        self.steps += int(gathered["lengths"].sum() + gathered["eval_lengths"].sum())
        self.episodes += int(gathered["lengths"].size + gathered["eval_lengths"].size)


REPLACE_FOR_S = 60.0  # how long an iteration keeps replacing a worker that died for good


def _gather(workers, aggregators, bundle, chunks, replace) -> tuple[dict, list]:
    refs = [w.rollouts.remote(bundle, c) for w, c in zip(workers, chunks, strict=True)]
    if not aggregators:
        return combine([_result(k, refs, workers, bundle, chunks, replace) for k in range(len(refs))]), refs
    groups = np.array_split(np.arange(len(refs)), len(aggregators))
    summaries = [a.summarize.remote([refs[k] for k in group]) for a, group in zip(aggregators, groups, strict=True)]
    return combine(engine.get(summaries)), refs


def _result(k: int, refs: list, workers: list, bundle, chunks, replace) -> dict:
    """Worker k's result. A worker that died for good (its restart failed: its constructor could
    not fetch the noise table from a node that had just died but was not declared dead yet) is
    replaced by a new actor (`replace(k)`) that runs the same chunk, so the iteration still gets
    exactly its plan; the replacements back off (0.25 s doubling to 4 s) until the engine has
    noticed the dead node and found the table elsewhere, for up to REPLACE_FOR_S."""
    deadline = time.monotonic() + REPLACE_FOR_S
    for attempt in itertools.count():
        try:
            return engine.get(refs[k])
        except engine.ActorDiedError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(min(4.0, 0.25 * 2**attempt))
            workers[k] = replace(k)
            refs[k] = workers[k].rollouts.remote(bundle, chunks[k])
    raise AssertionError("unreachable")


def _gradient(owner: EsOwner, table, aggregators, gathered: dict) -> np.ndarray:
    weights = gradient_weights(gathered["returns"])
    dim = owner.policy.num_params
    if not aggregators:
        return noise.weighted_sum(table, gathered["indices"], weights, dim)
    parts = zip(np.array_split(gathered["indices"], len(aggregators)), np.array_split(weights, len(aggregators)),
                strict=True)
    return np.sum(engine.get([a.gradient.remote(i, w) for a, (i, w) in zip(aggregators, parts, strict=True)]),
                  axis=0)


@engine.remote(num_cpus=0)
def es_owner(config: EsConfig, settings: state.RunSettings, table_box: list, recorder) -> dict:
    """One ES training run: iterates until the target, max_steps or max_time; see the module doc."""
    prefix = settings.prefix
    state.announce(state.owner_key(prefix))
    attempt = state.next_attempt(prefix)
    (table_ref,) = table_box
    info = envs.describe(config.env)
    owner = EsOwner(config, info, config.noise_size)
    checkpoint = state.load_checkpoint(prefix) if config.checkpoint_every else None
    if checkpoint is not None:
        owner.restore(checkpoint)
    resumed_from = owner.iteration
    make_worker = RemoteEsWorker.options(**settings.worker_options)

    def new_worker(k: int):
        return make_worker.remote(config.env, config.policy, config.hidden, [table_ref], config.sigma,
                                  state.worker_key(prefix, k))  # boxed: workers start while the table is drawn

    workers = [new_worker(k) for k in range(settings.workers)]
    make_aggregator = RemoteEsAggregator.options(**{**settings.worker_options, "num_cpus": 0})
    aggregators = [make_aggregator.remote(table_ref, owner.policy.num_params) for _ in range(config.aggregators)]
    engine.get([w.ready.remote() for w in workers])  # iterations are timed from here on
    table = None  # fetched for the first gradient, once the workers' first rollouts have had it
    target = config.target if config.target is not None else info.reward_threshold
    reached = False
    recorded = None  # the last row sent to the Recorder
    pids: list = []  # the rollout workers' processes in the last iteration
    while not reached:
        if config.max_steps is not None and owner.steps >= config.max_steps:
            break
        if config.max_time is not None and time.time() - settings.start_ts >= config.max_time:
            break
        if owner.iteration == 0:
            state.mark_started(prefix)
        begun = time.time()
        bundle = engine.put((owner.theta, *owner.filter.frozen()))
        chunks = owner.plan(len(workers))
        gathered, refs = _gather(workers, aggregators, bundle, chunks, new_worker)
        planned = np.concatenate([c.indices for c in chunks])
        exact = bool(np.array_equal(gathered["indices"], planned))
        if not exact:
            raise RuntimeError(f"iteration {owner.iteration + 1}: the pairs received are not the ones planned")
        if table is None:
            table = engine.get(table_ref)
        owner.update(gathered, _gradient(owner, table, aggregators, gathered))
        del refs, bundle
        pids = sorted(set(gathered["pids"]))
        eval_mean = float(gathered["eval_returns"].mean())
        reached = target is not None and eval_mean >= target
        now = time.time()
        recorded = recorder.record.remote({
            "iteration": owner.iteration, "attempt": attempt, "ts": now, "elapsed_s": now - settings.start_ts,
            "duration_s": now - begun, "env_steps": owner.steps, "episodes": owner.episodes,
            "eval_return": eval_mean, "mean_return": float(gathered["returns"].mean()),
            "max_return": float(gathered["returns"].max()), "pairs_planned": len(planned),
            "pairs_received": len(gathered["indices"]), "pairs_unique": len(np.unique(gathered["indices"])),
            "exact": exact, "worker_pids": " ".join(str(p) for p in gathered["pids"])})
        if config.checkpoint_every and owner.iteration % config.checkpoint_every == 0:
            state.save_checkpoint(prefix, owner.checkpoint())
    if recorded is not None:  # calls of one caller run in order: every row is in before we return
        engine.get(recorded)
    # private memory per worker (reading smaps takes a while: after the iterations, not between them)
    worker_private = (memory.private_bytes(pids) or 0) / len(pids) if pids else None
    for actor in workers + aggregators:
        engine.kill(actor)
    return {"attempt": attempt, "resumed_from": resumed_from, "iterations": owner.iteration,
            "env_steps": owner.steps, "reached": reached, "target": target, "theta": owner.theta,
            "worker_private_bytes": worker_private, "pid": os.getpid()}
