"""DQN and Double DQN (one flag, ``double``): the TD loss on one network and its target copy."""
from __future__ import annotations

import jax
import optax

from jaxfer.agents import targets
from jaxfer.agents.value_based import Algorithm
from jaxfer.code_path import CodePath
from jaxfer.config import TrainConfig
from jaxfer.networks.q_nets import make_network
from jaxfer.replay import uniform


def td_loss(net, cfg: TrainConfig, params, target_params, batch: uniform.Transition):
    """Huber loss of the (Double) Q-learning TD error, batched over the transitions."""
    q = net.apply(params, batch.obs)
    q_next_target = net.apply(target_params, batch.next_obs)
    discount = cfg.gamma * (1.0 - batch.done)
    if cfg.double:  # the online forward on s' has no backward: its params are behind stop_gradient
        q_next_online = net.apply(jax.lax.stop_gradient(params), batch.next_obs)
        td = jax.vmap(targets.double_q_learning)(q, batch.action, batch.reward, discount, q_next_target,
                                                 q_next_online)
    else:
        td = jax.vmap(targets.q_learning)(q, batch.action, batch.reward, discount, q_next_target)
    return optax.huber_loss(td).mean()


def algorithm(cfg: TrainConfig, num_actions: int, path: CodePath) -> Algorithm:
    net = make_network(cfg.network, num_actions, path)
    return Algorithm(net.init, net.apply, lambda p, t, batch: td_loss(net, cfg, p, t, batch))
