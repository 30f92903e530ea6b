"""MinAtar (Young & Tian 2019) through gymnax, in pure JAX: the CPU-sized Atari stand-ins.

Observations are gymnax's native 10x10 maps with one channel per object class, as uint8 0/255 so
every jaxfer network sees the same input convention. gymnax auto-resets; an episode that ends by
the time limit (truncation) is treated as terminal, like Catch's.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxfer.envs.base import Env, EnvError

GAMES = {f"minatar/{g}": f"{g}-MinAtar" for g in ("Breakout", "SpaceInvaders", "Seaquest", "Asterix", "Freeway")}


class MinAtarState(NamedTuple):
    inner: Any  # gymnax's env state
    ep_return: jax.Array
    ep_length: jax.Array


def _obs(x):
    return (x * 255).astype(jnp.uint8)


def make_minatar(env_id: str, obs: str = "grid") -> Env:
    if obs != "grid":
        raise EnvError(f"{env_id} has only the native 'grid' observation (10x10 object channels), not '{obs}'")
    import gymnax  # imported here: it is slow to import and only MinAtar needs it

    env, params = gymnax.make(GAMES[env_id])
    shape = env.observation_space(params).shape

    def reset(key):
        o, inner = env.reset(key, params)
        return MinAtarState(inner, jnp.float32(0), jnp.int32(0)), _obs(o)

    def step(state: MinAtarState, action, key):
        o, inner, reward, terminated, truncated, _ = env.step(key, state.inner, action, params)
        reward = reward.astype(jnp.float32)
        done = jnp.logical_or(terminated, truncated)
        ep_return, ep_length = state.ep_return + reward, state.ep_length + 1
        info = {"episode_return": jnp.where(done, ep_return, 0.0), "episode_length": jnp.where(done, ep_length, 0)}
        keep = jnp.logical_not(done)
        new = MinAtarState(inner, jnp.where(keep, ep_return, 0.0), jnp.where(keep, ep_length, 0))
        return new, _obs(o), reward, done, info

    return Env(id=env_id, num_actions=env.num_actions, obs_shape=tuple(shape), obs_dtype=np.uint8,
               reset=reset, step=step)
