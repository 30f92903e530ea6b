"""DQN on Catch-v0 in one file, to read top to bottom before reading jaxfer.

    python examples/dqn_catch.py [--seeds 2]

Everything a DQN is sits here: the Q-network (plain ``flax.linen.Conv``), the replay ring buffer,
epsilon-greedy acting, the TD loss against a target network, greedy evaluation, and seeds as a
``vmap`` axis over one jitted ``train`` function (PureJaxRL's style). Only the game comes from jaxfer
(``jaxfer.envs.make``). The hyper-parameters are those of ``configs/catch_dqn.yaml``; jaxfer adds what
this file leaves out (other agents and games, transfer, checkpoints and resume, devices and hosts, the
XLA-CPU kernels). tests/test_examples.py checks that both learn Catch to the same level.
"""
from __future__ import annotations

import argparse
import time
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxfer import envs

CONFIG = {
    "env": "catch/v0",
    "num_envs": 4,  # envs stepped together; one gradient update per vector step
    "total_steps": 40_000,  # env steps per seed
    "epoch_steps": 2_000,  # env steps between greedy evaluations
    "buffer_size": 10_000,  # transitions in the replay ring buffer
    "batch_size": 32,
    "learning_starts": 1_000,  # env steps of random-ish play before the first update
    "target_update": 100,  # updates between copies of the online network into the target network
    "gamma": 0.99,
    "lr": 1e-3,  # Adam
    "eps_start": 1.0,
    "eps_end": 0.05,
    "eps_decay_steps": 5_000,  # env steps over which epsilon decays linearly
    "eval_envs": 32,
    "eval_steps": 50,  # greedy steps per evaluation (a Catch game lasts 10-11 steps: envs/catch.py)
}


class QNetwork(nn.Module):
    """Two strided 3x3 convs, one hidden layer, one Q-value per action (jaxfer's catch_cnn)."""

    num_actions: int

    @nn.compact
    def __call__(self, obs):
        x = obs.astype(jnp.float32) / 255.0
        x = nn.relu(nn.Conv(16, (3, 3), strides=(2, 2), padding="VALID")(x))
        x = nn.relu(nn.Conv(32, (3, 3), strides=(2, 2), padding="VALID")(x))
        x = nn.relu(nn.Dense(64)(x.reshape(x.shape[0], -1)))
        return nn.Dense(self.num_actions)(x)


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    done: jax.Array
    next_obs: jax.Array


class Replay(NamedTuple):
    data: Transition  # each leaf (buffer_size, ...)
    position: jax.Array  # where the next transition goes
    size: jax.Array  # transitions stored so far (at most buffer_size)


class TrainState(NamedTuple):
    params: dict
    target_params: dict
    opt_state: optax.OptState
    replay: Replay
    env_state: object
    obs: jax.Array
    env_steps: jax.Array
    updates: jax.Array
    key: jax.Array


def make_train(cfg: dict):
    env = envs.make(cfg["env"], "grid")
    net = QNetwork(env.num_actions)
    tx = optax.adam(cfg["lr"])
    n = cfg["num_envs"]
    reset_all = jax.vmap(env.reset)
    step_all = jax.vmap(env.step)

    def epsilon(env_steps):
        frac = jnp.clip(env_steps / cfg["eps_decay_steps"], 0.0, 1.0)
        return cfg["eps_start"] + frac * (cfg["eps_end"] - cfg["eps_start"])

    def store(buf: Replay, new: Transition) -> Replay:
        idx = (buf.position + jnp.arange(n)) % cfg["buffer_size"]
        data = jax.tree.map(lambda stored, x: stored.at[idx].set(x), buf.data, new)
        return Replay(data, (buf.position + n) % cfg["buffer_size"], jnp.minimum(buf.size + n, cfg["buffer_size"]))

    def loss_fn(params, target_params, batch):
        q = net.apply(params, batch.obs)
        q_taken = jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0]
        next_value = net.apply(target_params, batch.next_obs).max(-1)
        target = batch.reward + cfg["gamma"] * (1.0 - batch.done) * next_value
        return optax.huber_loss(q_taken, jax.lax.stop_gradient(target)).mean()

    def learn(state: TrainState, key):
        idx = jax.random.randint(key, (cfg["batch_size"],), 0, state.replay.size)
        batch = jax.tree.map(lambda x: x[idx], state.replay.data)
        grads = jax.grad(loss_fn)(state.params, state.target_params, batch)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        sync = (state.updates + 1) % cfg["target_update"] == 0
        target_params = jax.tree.map(lambda p, t: jnp.where(sync, p, t), params, state.target_params)
        return state._replace(params=params, target_params=target_params, opt_state=opt_state,
                              updates=state.updates + 1)

    def vector_step(state: TrainState, _):
        key, k_explore, k_random, k_env, k_learn = jax.random.split(state.key, 5)
        greedy = net.apply(state.params, state.obs).argmax(-1)
        random = jax.random.randint(k_random, (n,), 0, env.num_actions)
        explore = jax.random.uniform(k_explore, (n,)) < epsilon(state.env_steps)
        action = jnp.where(explore, random, greedy)
        env_state, next_obs, reward, done, _ = step_all(state.env_state, action, jax.random.split(k_env, n))
        replay = store(state.replay, Transition(state.obs, action, reward, done.astype(jnp.float32), next_obs))
        state = state._replace(replay=replay, env_state=env_state, obs=next_obs, env_steps=state.env_steps + n,
                               key=key)
        state = jax.lax.cond(state.env_steps >= cfg["learning_starts"], learn, lambda s, k: s, state, k_learn)
        return state, None

    def evaluate(params, key):
        """Greedy catch rate: caught balls / landed balls over fresh games."""
        k_reset, k_steps = jax.random.split(key)
        env_state, obs = reset_all(jax.random.split(k_reset, cfg["eval_envs"]))

        def step(carry, k):
            env_state, obs = carry
            action = net.apply(params, obs).argmax(-1)
            env_state, obs, _, _, info = step_all(env_state, action, jax.random.split(k, cfg["eval_envs"]))
            return (env_state, obs), (info["caught"].sum(), info["ball_landed"].sum())

        _, (caught, landed) = jax.lax.scan(step, (env_state, obs), jax.random.split(k_steps, cfg["eval_steps"]))
        return caught.sum() / jnp.maximum(landed.sum(), 1)

    def epoch(state: TrainState, _):
        state, _ = jax.lax.scan(vector_step, state, None, cfg["epoch_steps"] // n)
        key, k_eval = jax.random.split(state.key)
        return state._replace(key=key), evaluate(state.params, k_eval)

    def train(key):
        k_net, k_env, key = jax.random.split(key, 3)
        env_state, obs = reset_all(jax.random.split(k_env, n))
        params = net.init(k_net, obs)
        size = cfg["buffer_size"]
        frames = jnp.zeros((size, *env.obs_shape), env.obs_dtype)
        empty = Transition(frames, jnp.zeros(size, jnp.int32), jnp.zeros(size), jnp.zeros(size), frames)
        replay = Replay(empty, jnp.int32(0), jnp.int32(0))
        state = TrainState(params, params, tx.init(params), replay, env_state, obs, jnp.int32(0), jnp.int32(0), key)
        state, catch_rates = jax.lax.scan(epoch, state, None, cfg["total_steps"] // cfg["epoch_steps"])
        return state.params, catch_rates

    return train


def main():
    p = argparse.ArgumentParser(description="DQN on Catch-v0, seeds vmapped, in one file")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="the first seed")
    args = p.parse_args()
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(args.seed, args.seed + args.seeds))
    start = time.perf_counter()
    _, catch_rates = jax.block_until_ready(jax.jit(jax.vmap(make_train(CONFIG)))(keys))
    print(f"{args.seeds} seeds x {CONFIG['total_steps']} env steps in {time.perf_counter() - start:.0f} s "
          "(compile included)")
    for epoch, rates in enumerate(catch_rates.T):
        steps = (epoch + 1) * CONFIG["epoch_steps"]
        per_seed = " ".join(f"{r:.3f}" for r in rates.tolist())
        print(f"env steps {steps:>6}: greedy catch rate {rates.mean():.3f} (per seed: {per_seed})")


if __name__ == "__main__":
    main()
