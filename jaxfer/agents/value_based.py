"""The value-based training loop shared by DQN, Double DQN, DQV and DQV-Max.

``make_train(cfg, env, algorithm, freeze=None)`` returns ``Trainer(init, epoch, algorithm)``:
``init(key, params=None)`` builds one agent's state (optionally from given parameters, e.g.
transferred layers); ``epoch(state)`` runs ``cfg.epoch_steps`` env steps (one gradient update per
vector step of ``cfg.num_envs`` envs after ``learning_starts``), then a greedy evaluation, and
returns ``(state, metrics)``. Everything is a pure function of one agent; seeds are added by vmap
(``jaxfer.seeds``). An ``Algorithm`` only says how to initialise parameters, read Q-values and
compute the loss; the target copy is the whole parameter tree, synced every ``target_update``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from jaxfer import replay
from jaxfer.config import TrainConfig
from jaxfer.envs import Env


class Algorithm(NamedTuple):
    init_params: Callable  # (key, obs batch) -> params
    q_values: Callable  # (params, obs batch) -> (batch, num_actions); acting is epsilon-greedy on it
    loss: Callable  # (params, target_params, replay.Transition) -> scalar


class TrainState(NamedTuple):
    params: chex.ArrayTree
    target_params: chex.ArrayTree
    opt_state: chex.ArrayTree
    replay: replay.Replay
    env_state: chex.ArrayTree  # num_envs envs
    obs: jax.Array  # (num_envs, *obs_shape)
    key: jax.Array
    env_steps: jax.Array  # int32, env steps taken by this agent
    updates: jax.Array  # int32, gradient updates taken


class Trainer(NamedTuple):
    init: Callable[..., TrainState]
    epoch: Callable[[TrainState], tuple[TrainState, dict]]
    algorithm: Algorithm


def make_optimizer(cfg: TrainConfig, freeze=None) -> optax.GradientTransformation:
    """Adam; layers marked True in the ``freeze`` tree get exactly zero updates."""
    adam = optax.adam(cfg.lr)
    if freeze is None:
        return adam
    labels = jax.tree.map(lambda frozen: "frozen" if frozen else "train", freeze)
    return optax.multi_transform({"train": adam, "frozen": optax.set_to_zero()}, labels)


def make_train(cfg: TrainConfig, env: Env, algo: Algorithm, freeze=None) -> Trainer:
    tx = make_optimizer(cfg, freeze)
    n_env = cfg.num_envs
    vreset, vstep = jax.vmap(env.reset), jax.vmap(env.step)

    def init(key: jax.Array, params=None) -> TrainState:
        k_net, k_env, key = jax.random.split(key, 3)
        env_state, obs = vreset(jax.random.split(k_env, n_env))
        if params is None:
            params = algo.init_params(k_net, obs[:1])
        return TrainState(
            params=params, target_params=jax.tree.map(jnp.copy, params), opt_state=tx.init(params),
            replay=replay.init(cfg.buffer_size, env.obs_shape, env.obs_dtype),
            env_state=env_state, obs=obs, key=key, env_steps=jnp.int32(0), updates=jnp.int32(0))

    def epsilon(env_steps):
        frac = jnp.clip(env_steps / cfg.eps_decay_steps, 0.0, 1.0)
        return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)

    def act(params, obs, key, eps):
        k_explore, k_random = jax.random.split(key)
        greedy = algo.q_values(params, obs).argmax(-1)
        random = jax.random.randint(k_random, greedy.shape, 0, env.num_actions)
        return jnp.where(jax.random.uniform(k_explore, greedy.shape) < eps, random, greedy).astype(jnp.int32)

    def episode_stats(reward, done, info):
        stats = {"return_sum": jnp.sum(info["episode_return"] * done), "episodes": jnp.sum(done)}
        if "caught" in info:  # Catch: count balls, also in the sparse v4
            stats |= {"caught": jnp.sum(info["caught"]), "landed": jnp.sum(info["ball_landed"])}
        return stats

    def sgd_step(params, target_params, opt_state, batch):
        loss, grads = jax.value_and_grad(algo.loss)(params, target_params, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def no_step(params, target_params, opt_state, batch):
        return params, opt_state, jnp.float32(0.0)

    def iteration(state: TrainState, _):
        key, k_act, k_env, k_sample = jax.random.split(state.key, 4)
        action = act(state.params, state.obs, k_act, epsilon(state.env_steps))
        env_state, next_obs, reward, done, info = vstep(state.env_state, action, jax.random.split(k_env, n_env))
        buf = replay.add(state.replay, replay.Transition(state.obs, action, reward, done, next_obs))
        env_steps = state.env_steps + n_env
        state = state._replace(replay=buf, env_state=env_state, obs=next_obs, key=key, env_steps=env_steps)

        # Only small operands enter the cond: passing the replay buffer would copy it every step.
        learn = env_steps >= cfg.learning_starts
        batch = replay.sample(buf, k_sample, cfg.batch_size)
        params, opt_state, loss = jax.lax.cond(
            learn, sgd_step, no_step, state.params, state.target_params, state.opt_state, batch)
        updates = state.updates + learn
        sync = learn & (updates % cfg.target_update == 0)
        target = jax.tree.map(lambda p, t: jnp.where(sync, p, t), params, state.target_params)
        state = state._replace(params=params, target_params=target, opt_state=opt_state, updates=updates)
        return state, episode_stats(reward, done, info) | {"loss_sum": loss, "learn": learn}

    def evaluate(params, key):
        """Greedy play on fresh envs: mean return of finished episodes (and catch rate on Catch)."""
        k_reset, key = jax.random.split(key)
        env_state, obs = vreset(jax.random.split(k_reset, cfg.eval_envs))

        def step(carry, k):
            env_state, obs = carry
            action = algo.q_values(params, obs).argmax(-1)
            env_state, obs, reward, done, info = vstep(env_state, action, jax.random.split(k, cfg.eval_envs))
            return (env_state, obs), episode_stats(reward, done, info)

        _, stats = jax.lax.scan(step, (env_state, obs), jax.random.split(key, cfg.eval_steps))
        return jax.tree.map(jnp.sum, stats)

    def summarise(stats, prefix):
        out = {f"{prefix}return": stats["return_sum"] / jnp.maximum(stats["episodes"], 1),
               f"{prefix}episodes": stats["episodes"]}
        if "caught" in stats:
            out[f"{prefix}catch_rate"] = stats["caught"] / jnp.maximum(stats["landed"], 1)
        return out

    def epoch(state: TrainState) -> tuple[TrainState, dict]:
        chex.assert_shape(state.obs, (n_env, *env.obs_shape))
        state, stats = jax.lax.scan(iteration, state, None, cfg.epoch_steps // n_env, unroll=cfg.unroll)
        stats = jax.tree.map(jnp.sum, stats)
        key, k_eval = jax.random.split(state.key)
        metrics = summarise(stats, "train_") | summarise(evaluate(state.params, k_eval), "eval_")
        metrics |= {"loss": stats["loss_sum"] / jnp.maximum(stats["learn"], 1), "epsilon": epsilon(state.env_steps),
                    "env_steps": state.env_steps}
        return state._replace(key=key), metrics

    return Trainer(init, epoch, algo)
