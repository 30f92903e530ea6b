"""A jittable uniform replay ring buffer for one agent (vmap it for a seed axis).

Hand-written rather than flashbax: it is a few lines, stores exactly what DQN needs, and its
whole state is one pytree of arrays that checkpoints like every other part of a train state.
"""
from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp


class Transition(NamedTuple):
    obs: jax.Array  # (..., *obs_shape) uint8
    action: jax.Array  # int32
    reward: jax.Array  # float32
    done: jax.Array  # bool: terminal (no bootstrap)
    next_obs: jax.Array


class Replay(NamedTuple):
    data: Transition  # each leaf has a leading capacity axis
    pos: jax.Array  # next write index
    size: jax.Array  # number of valid entries


def init(capacity: int, obs_shape: tuple, obs_dtype) -> Replay:
    data = Transition(jnp.zeros((capacity, *obs_shape), obs_dtype), jnp.zeros(capacity, jnp.int32),
                      jnp.zeros(capacity, jnp.float32), jnp.zeros(capacity, bool),
                      jnp.zeros((capacity, *obs_shape), obs_dtype))
    return Replay(data, jnp.int32(0), jnp.int32(0))


def add(buf: Replay, batch: Transition) -> Replay:
    """Write a batch of n transitions (leading axis n) at the ring position."""
    capacity = buf.data.action.shape[0]
    n = batch.action.shape[0]
    chex.assert_equal_shape_prefix([batch.obs, batch.action, batch.reward, batch.done, batch.next_obs], 1)
    idx = (buf.pos + jnp.arange(n)) % capacity
    data = jax.tree.map(lambda d, b: d.at[idx].set(b.astype(d.dtype)), buf.data, batch)
    return Replay(data, (buf.pos + n) % capacity, jnp.minimum(buf.size + n, capacity))


def sample(buf: Replay, key: jax.Array, batch_size: int) -> Transition:
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buf.size, 1))
    return jax.tree.map(lambda d: d[idx], buf.data)
