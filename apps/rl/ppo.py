"""PPO-style rollout collection on the engine: the owner task and its vector-env rollout workers.

The owner (`ppo_owner`, one task per training run) puts the weights and the observation
filter once per iteration and keeps one `PpoWorker.sample(bundle, fragment_id)` call in flight
per worker. Asynchronous scatter-gather (OSDI'18): `engine.wait(num_returns=1)` takes whichever
fragment finishes first and submits that worker's next fragment at once, with the newest
weights; fragments sampled with the previous weights carry their own log-probabilities, so the
clipped ratio corrects them. `--sync` runs barrier rounds instead: every worker samples one
fragment with the same weights, and the round waits for all. An iteration ends when its
fragments hold `train_batch` env steps; the learner (learner.py, autograd, in the owner's
process only) then runs its SGD epochs.

Each fragment id (worker, sequence number) is planned by the owner and counted once: a killed
worker is restarted (`max_restarts=-1`, `max_task_retries=-1`), its call re-run, and the row
of the iteration records how many fragments arrived and how many were distinct. Checkpoints
(every K iterations) hold the weights, Adam, the filter, counters and the RNG state.
Failures: an env error in a worker ends the owner with that error.
"""

from __future__ import annotations

import collections
import os
import sys
import time

import numpy as np
from ownrun import engine

from . import envs, state
from .config import PpoConfig
from .policy import ObsFilter, normalize
from .ppo_model import PpoNet

RETURN_WINDOW = 100  # episodes averaged for the reported mean return (as RLlib)


class PpoWorker:
    """Steps `count` envs together and returns fragments of `fragment` steps per env."""

    def __init__(self, env_id: str, count: int, fragment: int, hidden: int, gamma: float, seed: int,
                 announce_key: str | None = None):
        self.net = PpoNet(envs.describe(env_id), hidden)
        self.envs = envs.make_vector(env_id, count)
        self.fragment = fragment
        self.gamma = gamma
        self.rng = np.random.default_rng(seed)
        self.obs, _ = self.envs.reset(seed=seed)
        self.episode_return = np.zeros(count)
        self.episode_length = np.zeros(count, np.int64)
        if announce_key:
            state.announce(announce_key)

    def ready(self) -> dict:
        """This process's pid, and whether the learner's autodiff library is loaded in it (never
        imported here; a fork of a zygote warmed by an earlier owner could inherit it)."""
        return {"pid": os.getpid(), "autograd_loaded": "autograd" in sys.modules}

    def _act(self, theta, nobs):
        out, value, log_std = self.net.forward(np, theta, nobs)
        info = self.net.info
        if info.discrete:
            z = out - out.max(axis=1, keepdims=True)
            logp_all = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            u = self.rng.random((len(nobs), 1))
            actions = (np.exp(logp_all).cumsum(axis=1) < u).sum(axis=1).clip(0, info.act_dim - 1)
            return actions, logp_all[np.arange(len(nobs)), actions], value, actions
        std = np.exp(log_std)
        actions = out + std * self.rng.standard_normal(out.shape)
        logp = -0.5 * (((actions - out) / std) ** 2 + 2 * log_std + np.log(2 * np.pi)).sum(axis=1)
        return actions, logp, value, np.clip(actions, info.act_low, info.act_high)

    def sample(self, bundle: tuple, fragment_id: tuple) -> dict:
        theta, mean, std = bundle
        t_len, n = self.fragment, len(self.obs)
        obs = np.zeros((t_len, n, self.net.info.obs_dim))
        raw = np.zeros((t_len, n, self.net.info.obs_dim))
        actions = np.zeros((t_len, n), np.int64) if self.net.info.discrete else np.zeros((t_len, n, self.net.info.act_dim))
        logp, values, rewards, dones = (np.zeros((t_len, n)) for _ in range(4))
        finished: list[tuple[float, int]] = []
        for t in range(t_len):
            raw[t] = self.obs
            obs[t] = normalize(self.obs, mean, std)
            actions[t], logp[t], values[t], env_actions = self._act(theta, obs[t])
            self.obs, reward, terminated, truncated, info = self.envs.step(env_actions)
            rewards[t] = reward
            dones[t] = terminated | truncated
            self.episode_return += reward
            self.episode_length += 1
            for i in np.flatnonzero(truncated & ~terminated):  # bootstrap a cut-off episode
                final = normalize(info["final_obs"][i], mean, std)[None]
                rewards[t, i] += self.gamma * self.net.forward(np, theta, final)[1][0]
            for i in np.flatnonzero(dones[t]):
                finished.append((float(self.episode_return[i]), int(self.episode_length[i])))
                self.episode_return[i], self.episode_length[i] = 0.0, 0
        last_values = self.net.forward(np, theta, normalize(self.obs, mean, std))[1]
        return {"id": fragment_id, "obs": obs, "actions": actions, "logp": logp, "values": values,
                "rewards": rewards, "dones": dones, "last_values": last_values, "episodes": finished,
                "filter": ObsFilter.of(raw).state(), "steps": t_len * n, "pid": os.getpid()}


RemotePpoWorker = engine.remote(max_restarts=-1, max_task_retries=-1)(PpoWorker)


class _Collector:
    """Keeps fragments in flight on every worker and hands out the next one to finish."""

    def __init__(self, workers: list, sync: bool):
        self.workers = workers
        self.sync = sync
        self.next_seq = [0] * len(workers)
        self.pending: dict = {}  # ref -> (worker index, fragment id)

    def submit(self, k: int, bundle) -> None:
        fragment_id = (k, self.next_seq[k])
        self.next_seq[k] += 1
        self.pending[self.workers[k].sample.remote(bundle, fragment_id)] = (k, fragment_id)

    def collect(self, bundle, steps: int) -> list[dict]:
        """Fragments holding at least `steps` env steps."""
        got, total = [], 0
        while total < steps:
            if self.sync or not self.pending:
                for k in range(len(self.workers)):
                    if k not in {w for w, _ in self.pending.values()}:
                        self.submit(k, bundle)
            if self.sync:
                refs = list(self.pending)
                fragments = engine.get(refs)
                self.pending.clear()
            else:
                ready, _ = engine.wait(list(self.pending), num_returns=1)
                k, _ = self.pending.pop(ready[0])
                fragments = [engine.get(ready[0])]
                self.submit(k, bundle)
            got.extend(fragments)
            total += sum(f["steps"] for f in fragments)
        return got


def _batch(fragments: list[dict], config: PpoConfig) -> dict:
    from .learner import advantages

    parts = collections.defaultdict(list)
    for f in fragments:
        adv, targets = advantages(f["rewards"], f["values"], f["dones"], f["last_values"], config.gamma, config.lam)
        for key, value in (("obs", f["obs"]), ("actions", f["actions"]), ("logp", f["logp"]), ("adv", adv),
                           ("targets", targets)):
            parts[key].append(value.reshape(-1, *value.shape[2:]))
    return {k: np.concatenate(v) for k, v in parts.items()}


@engine.remote(num_cpus=0)
def ppo_owner(config: PpoConfig, settings: state.RunSettings, recorder) -> dict:
    """One PPO training run: iterates until the target, max_steps or max_time."""
    from .learner import Learner  # the autodiff library loads here, in the owner only

    prefix = settings.prefix
    state.announce(state.owner_key(prefix))
    attempt = state.next_attempt(prefix)
    info = envs.describe(config.env)
    net = PpoNet(info, config.hidden)
    rng = np.random.default_rng(config.seed)
    learner = Learner(net, config, net.initial(rng))
    obs_filter = ObsFilter(info.obs_dim)
    iteration = steps = 0
    recent: collections.deque = collections.deque(maxlen=RETURN_WINDOW)
    checkpoint = state.load_checkpoint(prefix) if config.checkpoint_every else None
    if checkpoint is not None:
        iteration, steps = checkpoint["iteration"], checkpoint["steps"]
        learner.theta = np.array(checkpoint["theta"])
        learner.adam.load(checkpoint["adam"])
        obs_filter = ObsFilter.from_state(checkpoint["filter"])
        rng.bit_generator.state = checkpoint["rng"]
        recent.extend(checkpoint["recent"])
    resumed_from = iteration
    make_worker = RemotePpoWorker.options(**settings.worker_options)
    seeds = rng.integers(0, 2**31 - 1, size=settings.workers)
    workers = [make_worker.remote(config.env, config.envs_per_worker, config.fragment, config.hidden, config.gamma,
                                  int(seeds[k]), state.worker_key(prefix, k)) for k in range(settings.workers)]
    autograd_in_workers = any(r["autograd_loaded"] for r in engine.get([w.ready.remote() for w in workers]))
    collector = _Collector(workers, config.sync)
    target = config.target if config.target is not None else info.reward_threshold
    seen_ids: set = set()
    reached = False
    state.mark_started(prefix)
    recorded = None  # the last row sent to the Recorder
    while not reached:
        if config.max_steps is not None and steps >= config.max_steps:
            break
        if config.max_time is not None and time.time() - settings.start_ts >= config.max_time:
            break
        begun = time.time()
        bundle = engine.put((learner.theta, *obs_filter.frozen()))
        fragments = collector.collect(bundle, config.train_batch)
        ids = [f["id"] for f in fragments]
        seen_ids.update(ids)
        for f in fragments:
            obs_filter.merge(ObsFilter.from_state(f["filter"]))
            recent.extend(r for r, _ in f["episodes"])
        sampled = time.time()
        learner.update(_batch(fragments, config), rng)
        iteration += 1
        steps += sum(f["steps"] for f in fragments)
        mean_return = float(np.mean(recent)) if recent else float("nan")
        reached = target is not None and len(recent) > 0 and mean_return >= target
        now = time.time()
        recorded = recorder.record.remote({
            "iteration": iteration, "attempt": attempt, "ts": now, "elapsed_s": now - settings.start_ts,
            "duration_s": now - begun, "learner_s": now - sampled, "env_steps": steps,
            "episodes": sum(len(f["episodes"]) for f in fragments), "mean_return": mean_return,
            "max_return": max((r for f in fragments for r, _ in f["episodes"]), default=float("nan")),
            "fragments": len(ids), "fragments_unique": len(set(ids)), "exact": len(set(ids)) == len(ids),
            "worker_pids": " ".join(str(p) for p in sorted({f["pid"] for f in fragments}))})
        if config.checkpoint_every and iteration % config.checkpoint_every == 0:
            state.save_checkpoint(prefix, {"iteration": iteration, "steps": steps, "theta": learner.theta.copy(),
                                           "adam": learner.adam.state(), "filter": obs_filter.state(),
                                           "rng": rng.bit_generator.state, "recent": list(recent)})
    if recorded is not None:  # calls of one caller run in order: every row is in before we return
        engine.get(recorded)
    for w in workers:
        engine.kill(w)
    return {"attempt": attempt, "resumed_from": resumed_from, "iterations": iteration, "env_steps": steps,
            "reached": reached, "target": target, "distinct_fragments": len(seen_ids), "autograd_in_workers": autograd_in_workers,
            "pid": os.getpid()}
