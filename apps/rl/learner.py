"""The PPO learner: advantages, the clipped surrogate loss and its gradient with autograd.

Owns GAE (`advantages`, numpy), the loss of one minibatch written with autograd.numpy
(gradients by autograd: no hand-written backprop) and `Learner.update`: a few epochs of
minibatch Adam steps over one batch, gradients clipped to `MAX_GRAD_NORM`. Imported only by
the PPO owner task: rollout workers evaluate the same network with plain numpy
(ppo_model.py). autograd is tiny and pure numpy (about 1 MB, ~0.15 s to import here) where JAX
is ~620 MB; see the README.

Not thread-safe (one owner thread). Failures: numpy errors propagate.
"""

from __future__ import annotations

import math

import autograd.numpy as anp
import numpy as np
from autograd import grad

from .optim import Adam
from .ppo_model import PpoNet

MAX_GRAD_NORM = 0.5
LOG_2PI = math.log(2 * math.pi)


def advantages(rewards, values, dones, last_values, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """GAE(lambda) over a fragment (time x envs); returns (advantages, value targets)."""
    adv = np.zeros_like(rewards, dtype=np.float64)
    running = np.zeros(rewards.shape[1])
    for t in reversed(range(len(rewards))):
        nonterminal = 1.0 - dones[t]
        next_values = last_values if t == len(rewards) - 1 else values[t + 1]
        delta = rewards[t] + gamma * next_values * nonterminal - values[t]
        running = delta + gamma * lam * nonterminal * running
        adv[t] = running
    return adv, adv + values


def log_prob(net: PpoNet, out, log_std, actions):
    if net.info.discrete:
        logp_all = out - anp.log(anp.sum(anp.exp(out - anp.max(out, axis=1, keepdims=True)), axis=1,
                                         keepdims=True)) - anp.max(out, axis=1, keepdims=True)
        return anp.sum(logp_all * np.eye(net.info.act_dim)[actions], axis=1), logp_all
    z = (actions - out) / anp.exp(log_std)
    return -0.5 * anp.sum(z * z + 2 * log_std + LOG_2PI, axis=1), None


class Learner:
    def __init__(self, net: PpoNet, config, theta: np.ndarray):
        self.net = net
        self.config = config
        self.adam = Adam(net.num_params, config.lr)
        self.grad = grad(self.loss)
        self.theta = theta

    def loss(self, theta, obs, actions, old_logp, adv, targets):
        c = self.config
        out, value, log_std = self.net.forward(anp, theta, obs)
        logp, logp_all = log_prob(self.net, out, log_std, actions)
        ratio = anp.exp(logp - old_logp)
        surrogate = anp.minimum(ratio * adv, anp.clip(ratio, 1 - c.clip, 1 + c.clip) * adv)
        if logp_all is not None:
            entropy = -anp.sum(anp.exp(logp_all) * logp_all, axis=1)
        else:
            entropy = anp.sum(log_std + 0.5 * (LOG_2PI + 1)) * anp.ones(len(obs))
        return (-anp.mean(surrogate) + c.vf_coeff * anp.mean((value - targets) ** 2)
                - c.entropy_coeff * anp.mean(entropy))

    def update(self, batch: dict, rng: np.random.Generator) -> dict:
        """SGD epochs over one batch (flat arrays); returns the mean loss of the last epoch."""
        n = len(batch["obs"])
        adv = batch["adv"]
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        losses = []
        for _ in range(self.config.sgd_epochs):
            order = rng.permutation(n)
            losses = []
            for start in range(0, n, self.config.minibatch):
                idx = order[start:start + self.config.minibatch]
                args = (batch["obs"][idx], batch["actions"][idx], batch["logp"][idx], adv[idx], batch["targets"][idx])
                g = self.grad(self.theta, *args)
                norm = float(np.sqrt(np.sum(g * g)))
                if norm > MAX_GRAD_NORM:
                    g = g * (MAX_GRAD_NORM / norm)
                self.theta = self.adam.step(self.theta, g)
            losses.append(float(self.loss(self.theta, *args)))
        return {"loss": float(np.mean(losses))}
