"""DQN and Double DQN (one flag, ``double``): the TD loss on one network and its target copy."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxfer import replay
from jaxfer.agents.value_based import Algorithm
from jaxfer.config import TrainConfig
from jaxfer.nets import make_network


def td_loss(net, cfg: TrainConfig, params, target_params, batch: replay.Transition):
    """Huber TD loss; the Double DQN target picks a* with the online net, evaluates it with the target."""
    q = net.apply(params, batch.obs)
    q_next_target = net.apply(target_params, batch.next_obs)
    if cfg.double:  # the online forward on s' has no backward: its params are behind stop_gradient
        q_next_online = net.apply(jax.lax.stop_gradient(params), batch.next_obs)
        next_value = jnp.take_along_axis(q_next_target, q_next_online.argmax(-1)[:, None], -1)[:, 0]
    else:
        next_value = q_next_target.max(-1)
    target = batch.reward + cfg.gamma * (1.0 - batch.done) * next_value
    q_taken = jnp.take_along_axis(q, batch.action[:, None], -1)[:, 0]
    return optax.huber_loss(q_taken, jax.lax.stop_gradient(target)).mean()


def algorithm(cfg: TrainConfig, num_actions: int) -> Algorithm:
    net = make_network(cfg.network, num_actions, cfg.conv_impl, cfg.tuning)
    return Algorithm(net.init, net.apply, lambda p, t, batch: td_loss(net, cfg, p, t, batch))
