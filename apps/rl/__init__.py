"""RL rollouts on actors (`ownrun rl`): evolution strategies and PPO-style collection.

Modules: config (every option, pydantic models shared by the CLI and job files), envs
(gymnasium env checks and spaces), policy (numpy policies and the observation filter),
noise (the shared noise table task), es (ES owner task, rollout workers, aggregators),
ppo (PPO owner task and vector-env rollout workers), learner (PPO losses and gradients with
autograd: imported only by the PPO owner, never by rollout workers), state (KV keys,
checkpoints, the Recorder actor), cluster (engine start and placement), failures (failure
injection), memory (store and private memory figures), report (run directory, table, plots)
and runner (the driver: `run_es(config)`, `run_ppo(config)`). Imports nothing heavy.
"""
