"""A2C, the synchronous form of A3C (Mnih et al. 2016), as a ``loop.Agent``.

Each seed's E envs act ``n_steps`` vector steps (A3C's t_max) with the sampled policy; then one update
from the whole (n_steps, E) rollout: n-step returns bootstrapped from the critic after the last step
and cut at ``done``, loss = -log pi(a|s) A + vf_coef 0.5 (G - V)^2 - ent_coef H(pi), gradients
clipped to a global norm, then Adam or RMSProp. A recurrent core's memory is recomputed from the
memory at the rollout's start (the loop passes it to ``learn``): truncated BPTT over n_steps.
Synchronous updates replace A3C's asynchronous workers; vmapped seeds stay independent agents.
"""
from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from jaxfer.agents import targets
from jaxfer.agents.loop import Agent, Rollout
from jaxfer.agents.value_based import stop_frozen, with_freeze
from jaxfer.code_path import CodePath
from jaxfer.config import TrainConfig
from jaxfer.envs import Env
from jaxfer.networks import actor_critic


class A2CState(NamedTuple):
    params: chex.ArrayTree
    opt_state: chex.ArrayTree


def a2c_loss(logits: jax.Array, values: jax.Array, actions: jax.Array, returns: jax.Array,
             ent_coef: float, vf_coef: float) -> tuple[jax.Array, dict]:
    """Advantage actor-critic loss over a (T, B) rollout; the advantage G - V is a constant for the actor."""
    chex.assert_rank([logits, values, actions, returns], [3, 2, 2, 2])
    chex.assert_equal_shape([values, actions, returns])
    logp = jax.nn.log_softmax(logits)
    logp_a = jnp.take_along_axis(logp, actions[..., None], -1)[..., 0]
    advantage = jax.lax.stop_gradient(returns - values)
    policy_loss = -jnp.mean(logp_a * advantage)
    value_loss = 0.5 * jnp.mean((returns - values) ** 2)
    entropy = -jnp.mean(jnp.sum(jnp.exp(logp) * logp, -1))
    total = policy_loss + vf_coef * value_loss - ent_coef * entropy
    return total, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}


def make_optimizer(cfg: TrainConfig, freeze=None) -> optax.GradientTransformation:
    """Global-norm clipping then Adam or RMSProp (decay 0.99, eps 1e-5 as in OpenAI Baselines' A2C);
    frozen layers get zero updates and stay out of the clipping norm."""
    step = optax.adam(cfg.lr) if cfg.optimizer == "adam" else optax.rmsprop(cfg.lr, decay=0.99, eps=1e-5)
    return with_freeze(optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), step), freeze)


def make_loss(cfg: TrainConfig, net: actor_critic.ActorCritic, freeze=None):
    """(params, Rollout (T, E), memory at its start) -> (A2C loss, terms): what ``update`` differentiates,
    exposed so that the transfer predictors take the gradients of the same loss."""
    def unroll(params, memory, obs, first):
        return net.apply(params, memory, obs, first, method=actor_critic.ActorCritic.unroll)

    def loss(params, rollout: Rollout, memory):
        # One pass over the T steps and the state after them (its value bootstraps the returns).
        obs = jnp.concatenate([rollout.obs, rollout.next_obs[-1:]])
        first = jnp.concatenate([rollout.first, rollout.done[-1:]])
        _, logits, values = unroll(stop_frozen(params, freeze), memory, obs, first)
        discount = cfg.gamma * (1.0 - rollout.done.astype(jnp.float32))
        returns = jax.vmap(targets.discounted_returns, in_axes=(1, 1, 0), out_axes=1)(
            rollout.reward, discount, jax.lax.stop_gradient(values[-1]))
        return a2c_loss(logits[:-1], values[:-1], rollout.action, returns, cfg.ent_coef, cfg.vf_coef)

    return loss


def make_agent(cfg: TrainConfig, env: Env, path: CodePath, freeze=None) -> Agent:
    net = actor_critic.from_config(cfg, env.num_actions, path)
    tx = make_optimizer(cfg, freeze)
    loss = make_loss(cfg, net, freeze)

    def unroll(params, memory, obs, first):
        return net.apply(params, memory, obs, first, method=actor_critic.ActorCritic.unroll)

    def init(key: jax.Array, obs: jax.Array, params=None) -> A2CState:
        if params is None:
            params = net.init(key, net.initial_memory(1), obs[None, :1], jnp.ones((1, 1), bool),
                              method=actor_critic.ActorCritic.unroll)
        return A2CState(params, tx.init(params))

    def act(agent: A2CState, memory, obs, first, key):
        memory, logits, _ = unroll(agent.params, memory, obs[None], first[None])
        return memory, jax.random.categorical(key, logits[0]).astype(jnp.int32)

    def greedy(params, memory, obs, first):
        memory, logits, _ = unroll(params, memory, obs[None], first[None])
        return memory, logits[0].argmax(-1).astype(jnp.int32)

    def update(agent: A2CState, rollout: Rollout, memory, env_steps):  # from the rollout alone: no replay
        chex.assert_shape(rollout.action, (cfg.n_steps, cfg.num_envs))
        (_, stats), grads = jax.value_and_grad(loss, has_aux=True)(agent.params, rollout, memory)
        updates, opt_state = tx.update(grads, agent.opt_state, agent.params)
        params = optax.apply_updates(agent.params, updates)
        return A2CState(params, opt_state), stats | {"grad_norm": optax.tree.norm(grads), "updates": jnp.int32(1)}

    def report(agent: A2CState, stats: dict) -> dict:
        n = jnp.maximum(stats["updates"], 1)
        return {k: v / n for k, v in stats.items() if k != "updates"}

    return Agent(init, net.initial_memory, act, greedy, lambda agent, rollout: agent, update, report,
                 rollout_len=cfg.n_steps)
