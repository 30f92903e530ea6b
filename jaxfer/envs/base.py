"""The environment interface shared by all jaxfer backends (catch/, minatar/, atari/)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

from jaxfer import mesh
from jaxfer.errors import JaxferError


class EnvError(JaxferError):
    """Unknown environment id or observation mode."""


@dataclasses.dataclass(frozen=True)
class Pool:
    """``num_seeds x num_envs`` environments stepped as one batch: what training loops use.

    ``reset(keys (S,)) -> (state, obs (S, E, *obs_shape))`` returns global arrays split over the seed
    mesh (``jaxfer.mesh``) and may run on the host (envpool's reset does); ``step(state, actions int32
    (S', E)) -> (state, obs, reward f32 (S', E), done bool (S', E), info)`` is pure, auto-resets, and
    runs on one device's block of S' seeds inside ``mesh.over_seeds`` (a one-device pool also outside).
    ``done`` ends the learner's bootstrapping (a lost life under episodic-life training);
    ``info["episode_end"]`` marks the end of a real game and ``info["episode_return"]`` /
    ``["episode_length"]`` hold its true score and length there.
    ``checkpointable``: the state can be saved and restored (a pure-JAX state can, an emulator
    handle cannot: a resumed Atari run starts fresh games).
    """

    num_seeds: int
    num_envs: int
    reset: Callable
    step: Callable
    checkpointable: bool
    options: dict = dataclasses.field(default_factory=dict)  # backend settings, recorded in run.json
    block_reset: Callable | None = None  # pure-JAX pools: ``reset`` of one device's block, inside over_seeds


@dataclasses.dataclass(frozen=True)
class Env:
    """An environment's description, and how to make pools of it.

    Pure-JAX backends give ``reset(key) -> (state, obs)`` and ``step(state, action, key) -> (state,
    obs, reward, done, info)`` for one env (jittable, vmappable, auto-resetting: on ``done`` the
    returned state and obs start a fresh episode while reward, done and info describe the step that
    just happened); ``pool`` vmaps them. Backends that cannot be vmapped (envpool) leave them None
    and give ``make_pool(num_seeds, num_envs, seed) -> Pool`` instead.
    """

    id: str
    num_actions: int
    obs_shape: tuple
    obs_dtype: Any
    reset: Callable | None = None
    step: Callable | None = None
    make_pool: Callable | None = None
    # Set where obs = (H, W, K) single frames stacked oldest first: what the env shows before an
    # episode's first frame, "zeros" or "repeat" (jaxfer.replay.stacked_frames then stores each frame once).
    frame_stack_fill: str | None = None


def pool(env: Env, num_seeds: int, num_envs: int, seed: int) -> Pool:
    """A ``Pool`` of ``env``. Seed i's envs depend only on ``seed + i`` (and, for pure-JAX envs,
    on the keys passed to ``reset``), so seed i of a pool behaves as that seed alone."""
    if env.make_pool is not None:
        return env.make_pool(num_seeds, num_envs, seed)

    def reset(keys):
        k_reset, k_next = jax.vmap(lambda k: tuple(jax.random.split(k)))(keys)
        states, obs = jax.vmap(lambda k: jax.vmap(env.reset)(jax.random.split(k, num_envs)))(k_reset)
        return (states, k_next), obs

    def step_one(states, key, actions):
        key, k_step = jax.random.split(key)
        states, obs, reward, done, info = jax.vmap(env.step)(states, actions, jax.random.split(k_step, num_envs))
        info = {"episode_end": done} | info
        return states, key, obs, reward, done, info

    def step(state, actions):
        states, keys, obs, reward, done, info = jax.vmap(step_one)(*state, actions)
        return (states, keys), obs, reward, done, info

    # jit: eager resets compile op by op; over_seeds: each device resets its own seeds
    return Pool(num_seeds, num_envs, jax.jit(mesh.over_seeds(reset, mesh.SEED_AXIS, mesh.SEED_AXIS)), step,
                checkpointable=True, block_reset=reset)
