"""The value-based agent shared by DQN, Double DQN, DQV and DQV-Max, as a ``loop.Agent``.

Epsilon-greedy acting, a per-seed replay ring buffer (``store``), one gradient update per vector step
of ``cfg.num_envs`` envs after ``learning_starts`` (``update``: sample, loss and gradient, Adam with
optional frozen layers, and a target copy of the whole parameter tree synced every ``target_update``
updates). The loop calls ``update`` only after ``learning_starts``; on the XLA-CPU path the code path
wraps the gradient step in the learning-start gate instead. An ``Algorithm`` only says how to
initialise parameters, read Q-values and compute the loss.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from jaxfer.agents.loop import Agent, Rollout
from jaxfer.code_path import CodePath
from jaxfer.config import TrainConfig
from jaxfer.envs import Env
from jaxfer.replay import stacked_frames, uniform


class Algorithm(NamedTuple):
    init_params: Callable  # (key, obs batch) -> params
    q_values: Callable  # (params, obs batch) -> (batch, num_actions); acting is epsilon-greedy on it
    loss: Callable  # (params, target_params, uniform.Transition) -> scalar


class ValueState(NamedTuple):
    params: chex.ArrayTree
    target_params: chex.ArrayTree
    opt_state: chex.ArrayTree
    replay: uniform.Replay | stacked_frames.FrameReplay
    key: jax.Array
    sample_key: jax.Array  # what the next update samples its batch with, drawn as the rollout is stored
    env_steps: jax.Array  # int32, env steps taken by this agent
    updates: jax.Array  # int32, gradient updates taken


def with_freeze(tx: optax.GradientTransformation, freeze=None) -> optax.GradientTransformation:
    """``tx`` on the trained layers; layers marked True in the ``freeze`` tree get exactly zero updates
    (and stay out of anything ``tx`` computes over the tree, such as a clipping norm)."""
    if freeze is None:
        return tx
    labels = jax.tree.map(lambda frozen: "frozen" if frozen else "train", freeze)
    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


def stop_frozen(params, freeze=None):
    """``params`` with the frozen layers behind ``stop_gradient``: their gradients (and, below the
    lowest trained layer, the whole backward pass) are never computed, not merely zeroed."""
    if freeze is None:
        return params
    return jax.tree.map(lambda p, frozen: jax.lax.stop_gradient(p) if frozen else p, params, freeze)


def updates_done(env_steps: jax.Array, num_envs: int, learning_starts: int) -> jax.Array:
    """Gradient updates a seed has taken once it has stepped ``env_steps`` (counted after the vector step):
    one per vector step from the first that reaches ``learning_starts``. Every seed steps in lockstep, so
    this is one unbatched count: on the XLA-CPU path the target sync branches on it (``CodePath.either``)
    instead of selecting between two whole parameter trees at every update, as a per-seed count under
    ``vmap`` would make it."""
    first = max(1, -(-learning_starts // num_envs))
    return jnp.maximum(env_steps // num_envs - first + 1, 0)


def make_replay(cfg: TrainConfig, env: Env):
    """(init(), add(buf, Rollout), sample(buf, key)): frame-once storage for stacked frames."""
    if env.frame_stack_fill is None:
        def add(buf, r: Rollout):
            flat = jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), r)
            return uniform.add(buf, uniform.Transition(flat.obs, flat.action, flat.reward, flat.done, flat.next_obs))

        return (lambda: uniform.init(cfg.buffer_size, env.obs_shape, env.obs_dtype), add,
                lambda buf, key: uniform.sample(buf, key, cfg.batch_size))
    k = env.obs_shape[-1]
    return (lambda: stacked_frames.init(cfg.buffer_size, cfg.num_envs, env.obs_shape, env.obs_dtype),
            lambda buf, r: stacked_frames.add(buf, r.obs, r.action, r.reward, r.done, r.first),
            lambda buf, key: stacked_frames.sample(buf, key, cfg.batch_size, k, env.frame_stack_fill))


def make_agent(cfg: TrainConfig, env: Env, algo: Algorithm, path: CodePath, freeze=None) -> Agent:
    tx = with_freeze(optax.adam(cfg.lr), freeze)
    replay_init, replay_add, replay_sample = make_replay(cfg, env)

    def init(key: jax.Array, obs: jax.Array, params=None) -> ValueState:
        k_net, key = jax.random.split(key)
        if params is None:
            params = algo.init_params(k_net, obs[:1])
        return ValueState(params=params, target_params=jax.tree.map(jnp.copy, params), opt_state=tx.init(params),
                          replay=replay_init(), key=key, sample_key=jnp.zeros_like(key),  # drawn by the first store
                          env_steps=jnp.int32(0), updates=jnp.int32(0))

    def epsilon(env_steps):
        frac = jnp.clip(env_steps / cfg.eps_decay_steps, 0.0, 1.0)
        return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)

    def act(agent: ValueState, memory, obs, first, key):
        k_explore, k_random = jax.random.split(key)
        greedy = algo.q_values(agent.params, obs).argmax(-1)
        random = jax.random.randint(k_random, greedy.shape, 0, env.num_actions)
        explore = jax.random.uniform(k_explore, greedy.shape) < epsilon(agent.env_steps)
        return memory, jnp.where(explore, random, greedy).astype(jnp.int32)

    def greedy(params, memory, obs, first):
        return memory, algo.q_values(params, obs).argmax(-1).astype(jnp.int32)

    def store(agent: ValueState, rollout: Rollout) -> ValueState:
        """The rollout into the replay buffer, and a key for the next sample: drawn at every step, updated or
        not, so that both code paths sample the same batches."""
        key, sample_key = jax.random.split(agent.key)
        return agent._replace(replay=replay_add(agent.replay, rollout), key=key, sample_key=sample_key,
                              env_steps=agent.env_steps + rollout.action.size)

    def sgd_step(learner, target_params, batch):
        """Loss and gradient, then the optimiser step; ``learner`` = (params, opt_state, update count)."""
        params, opt_state, count = learner
        loss, grads = jax.value_and_grad(lambda p: algo.loss(stop_frozen(p, freeze), target_params, batch))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, count + 1), {"loss_sum": loss, "updates": jnp.int32(1)}

    step = path.learning_gate(sgd_step, cfg.learning_starts)

    def update(agent: ValueState, rollout: Rollout, memory, env_steps):
        """One update, as CleanRL's: sample a batch, loss and gradient, optimiser step, target sync."""
        batch = replay_sample(agent.replay, agent.sample_key)
        (params, opt_state, count), stats = step(env_steps, (agent.params, agent.opt_state, agent.updates),
                                                 agent.target_params, batch)
        sync = updates_done(env_steps, cfg.num_envs, cfg.learning_starts) % cfg.target_update == 0
        target = path.either(sync, params, agent.target_params)
        return agent._replace(params=params, target_params=target, opt_state=opt_state, updates=count), stats

    def report(agent: ValueState, stats: dict) -> dict:
        return {"loss": stats["loss_sum"] / jnp.maximum(stats["updates"], 1), "epsilon": epsilon(agent.env_steps)}

    return Agent(init, lambda num_envs: (), act, greedy, store, update, report, rollout_len=1,
                 learning_starts=cfg.learning_starts)
