"""A replay memory for frame-stacked observations that stores each frame once.

A stack of K frames repeats each frame K times across consecutive observations: storing stacks
costs 2K frames per transition (obs and next_obs), storing frames costs one, so several seeds'
Atari buffers fit in memory. Rows are vector steps, columns are the agent's envs; row t holds the
newest frame of obs_t, the action, reward and done of step t, and whether obs_t began an episode.
Stacks are rebuilt when sampling: frames from before an episode's start are replaced by what the
environment itself shows at a reset (``fill``), so a rebuilt stack equals the observed one.
next_obs_t is the stack of row t+1, so the newest row is never sampled.
"""
from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from jaxfer.replay import uniform

FILLS = ("zeros", "repeat")  # before an episode's first frame: black frames, or copies of that frame


class FrameReplay(NamedTuple):
    frames: jax.Array  # (rows, envs, H, W) uint8: the newest frame of each observation
    action: jax.Array  # (rows, envs) int32
    reward: jax.Array  # (rows, envs) float32
    done: jax.Array  # (rows, envs) bool
    first: jax.Array  # (rows, envs) bool: the observation began an episode
    pos: jax.Array  # next row to write
    size: jax.Array  # rows written (at most rows)


def init(capacity: int, num_envs: int, obs_shape: tuple, obs_dtype) -> FrameReplay:
    """``capacity`` transitions in all, ``capacity // num_envs`` rows; obs_shape = (H, W, K)."""
    rows = capacity // num_envs
    h, w, _ = obs_shape
    z = lambda dtype, *shape: jnp.zeros((rows, num_envs, *shape), dtype)  # noqa: E731
    return FrameReplay(z(obs_dtype, h, w), z(jnp.int32), z(jnp.float32), z(bool), z(bool), jnp.int32(0), jnp.int32(0))


def add(buf: FrameReplay, obs, action, reward, done, first) -> FrameReplay:
    """Write T vector steps (leaves (T, envs, ...)); only the newest frame of each obs is kept."""
    rows = buf.frames.shape[0]
    chex.assert_rank(obs, 5)
    chex.assert_equal_shape([action, reward, done, first])
    idx = (buf.pos + jnp.arange(action.shape[0])) % rows
    new = (obs[..., -1], action, reward, done, first)
    written = [old.at[idx].set(x.astype(old.dtype)) for old, x in zip(buf[:5], new)]
    return FrameReplay(*written, (buf.pos + idx.shape[0]) % rows, jnp.minimum(buf.size + idx.shape[0], rows))


def stacks(buf: FrameReplay, row: jax.Array, col: jax.Array, k: int, fill: str) -> jax.Array:
    """The K-frame observations at (row, col) pairs, (n, H, W, K), oldest frame first."""
    rows = buf.frames.shape[0]
    newest = buf.frames[row, col]
    out, alive = [newest], ~buf.first[row, col]
    for back in range(1, k):
        r = (row - back) % rows
        frame = jnp.where(alive[:, None, None], buf.frames[r, col], newest if fill == "repeat" else 0)
        newest = frame if fill == "repeat" else newest  # "repeat": the episode's first frame carries on
        out.append(frame)
        alive = alive & ~buf.first[r, col]
    return jnp.stack(out[::-1], axis=-1)


def sample(buf: FrameReplay, key: jax.Array, batch_size: int, k: int, fill: str) -> uniform.Transition:
    """Uniform over transitions whose K-frame history and next observation are still stored."""
    rows, envs = buf.frames.shape[:2]
    k_row, k_col = jax.random.split(key)
    valid = jnp.maximum(buf.size - k, 1)  # logical rows [pos - size + k - 1, pos - 2]
    back = jax.random.randint(k_row, (batch_size,), 2, valid + 2)
    row = (buf.pos - back) % rows
    col = jax.random.randint(k_col, (batch_size,), 0, envs)
    nxt = (row + 1) % rows
    return uniform.Transition(stacks(buf, row, col, k, fill), buf.action[row, col], buf.reward[row, col],
                             buf.done[row, col], stacks(buf, nxt, col, k, fill))
