"""DQV and DQV-Max (Sabatelli et al.; targets as in the authors' code).

Both learn a state-value network V (head of width 1) beside the Q-network; parameters are
``{"q": ..., "v": ...}`` and the agent acts epsilon-greedily on Q.
- DQV: y = r + gamma V(s'; phi-); Q and V both regress to y (only V's target copy is used).
- DQV-Max: V regresses to r + gamma max_a Q(s', a; theta-) (only Q's target copy is used);
  Q regresses to r + gamma V(s'; phi) with the online V.
Terminal transitions bootstrap nothing (y = r). Q loss Huber, V loss squared error.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxfer.agents import targets
from jaxfer.agents.value_based import Algorithm
from jaxfer.code_path import CodePath
from jaxfer.config import TrainConfig
from jaxfer.networks.q_nets import make_network
from jaxfer.replay import uniform


def dqv_loss(qnet, vnet, cfg: TrainConfig, use_max: bool, params, target_params, batch: uniform.Transition):
    q = qnet.apply(params["q"], batch.obs)
    v = vnet.apply(params["v"], batch.obs)[:, 0]
    discount = cfg.gamma * (1.0 - batch.done)
    if use_max:  # the online V on s' is a target: no backward through it
        td_v = jax.vmap(targets.qv_max)(v, batch.reward, discount, qnet.apply(target_params["q"], batch.next_obs))
        v_next = vnet.apply(jax.lax.stop_gradient(params["v"]), batch.next_obs)[:, 0]
    else:
        v_next = vnet.apply(target_params["v"], batch.next_obs)[:, 0]
        td_v = jax.vmap(targets.v_learning)(v, batch.reward, discount, v_next)
    td_q = jax.vmap(targets.qv_learning)(q, batch.action, batch.reward, discount, v_next)
    return optax.huber_loss(td_q).mean() + jnp.mean(td_v**2)


def _algorithm(cfg: TrainConfig, num_actions: int, path: CodePath, use_max: bool) -> Algorithm:
    qnet = make_network(cfg.network, num_actions, path)
    vnet = make_network(cfg.network, 1, path)

    def init_params(key, obs):
        k_q, k_v = jax.random.split(key)
        return {"q": qnet.init(k_q, obs), "v": vnet.init(k_v, obs)}

    return Algorithm(init_params, lambda p, obs: qnet.apply(p["q"], obs),
                     lambda p, t, batch: dqv_loss(qnet, vnet, cfg, use_max, p, t, batch))


def algorithm(cfg: TrainConfig, num_actions: int, path: CodePath) -> Algorithm:
    return _algorithm(cfg, num_actions, path, use_max=False)


def max_algorithm(cfg: TrainConfig, num_actions: int, path: CodePath) -> Algorithm:
    return _algorithm(cfg, num_actions, path, use_max=True)
