"""Game frames for DPTL and Grad-CAM: observations as a source model sees them, cached on disk.

DPTL scores a source model on a few hundred to a thousand frames of each target game. The frames are
the target's observations in the source's observation mode (same preprocessing and frame stack),
played by a random policy or a given one. Every backend is stepped through ``jaxfer.envs.pool``
with one seed: pure-JAX envs (Catch, MinAtar) are vmapped and the whole rollout is one jitted
``lax.scan``; envpool's Atari pools reset on the host and step inside the same scan.
``collect`` keeps one compressed ``.npz`` per (env id, obs mode, N, seed, policy), so a repeated
run reads the frames back instead of playing again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxfer import envs
from jaxfer.runtime import files

NUM_ENVS = 8  # envs played side by side: frames come from several episodes at once


@dataclasses.dataclass(frozen=True)
class Policy:
    """How frames are played. ``tag`` names the policy in the cache key, so frames of different
    policies never mix; ``act(obs (E, *obs_shape), key) -> int32 actions (E,)`` is pure."""

    tag: str
    act: Callable


def random_policy(num_actions: int) -> Policy:
    return Policy("random", lambda obs, key: jax.random.randint(key, obs.shape[:1], 0, num_actions))


def params_digest(params) -> str:
    """12 hex digits of SHA-1 over a parameter tree's leaves: two agents share a digest only if
    their weights are equal, so cached frames follow the weights, not a file name."""
    h = hashlib.sha1()
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        h.update(jax.tree_util.keystr(path).encode())
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()[:12]


def greedy_policy(net, params) -> Policy:
    """argmax_a Q(obs, a) of a Q-network (unbatched parameters)."""
    return Policy(f"greedy-{params_digest(params)}",
                  lambda obs, key: jnp.argmax(net.apply(params, obs), axis=-1).astype(jnp.int32))


def rollout(env: envs.Env, steps: int, num_envs: int, seed: int, policy: Policy):
    """Play ``steps`` vector steps of ``num_envs`` envs: (obs (steps, E, *obs_shape) seen before each
    step, episode_end (steps, E) True where that step ended a game), as numpy arrays."""
    pool = envs.pool(env, 1, num_envs, seed)
    k_reset, k_act = jax.random.split(jax.random.PRNGKey(seed))
    state, obs = pool.reset(k_reset[None])  # on the host for envpool, so outside the jit
    chex.assert_shape(obs, (1, num_envs, *env.obs_shape))

    def body(carry, key):
        state, obs = carry
        actions = policy.act(obs[0], key).astype(jnp.int32)[None]
        chex.assert_shape(actions, (1, num_envs))
        state, next_obs, _, _, info = pool.step(state, actions)
        return (state, next_obs), (obs[0], info["episode_end"][0])

    play = jax.jit(lambda state, obs, keys: jax.lax.scan(body, (state, obs), keys)[1])
    seen, ends = play(state, obs, jax.random.split(k_act, steps))
    return np.asarray(seen), np.asarray(ends)


def cache_path(cache_dir: Path, env_id: str, obs: str, n: int, seed: int, tag: str) -> Path:
    return Path(cache_dir) / f"{env_id.replace('/', '_')}__{obs}__n{n}__seed{seed}__{tag}.npz"


def collect(env_id: str, obs: str = "grid", n: int = 1000, seed: int = 0, policy: Policy | None = None,
            cache_dir: Path | None = None) -> np.ndarray:
    """``n`` observations (n, *obs_shape) of ``env_id`` in observation mode ``obs``, played by
    ``policy`` (default: uniform random actions), read from / written to ``cache_dir`` if given."""
    if n < 1:
        raise ValueError(f"the number of frames must be >= 1, got {n}")
    env = None
    if policy is None:
        env = envs.make(env_id, obs)
        policy = random_policy(env.num_actions)
    path = None if cache_dir is None else cache_path(cache_dir, env_id, obs, n, seed, policy.tag)
    if path is not None and path.exists():
        try:
            return files.load_npz(path)["frames"]
        except (files.DamagedFile, KeyError):  # a cache: collect the frames again
            print(f"jaxfer: {path} is damaged; collecting its frames again", file=sys.stderr)
    env = env or envs.make(env_id, obs)
    seen, _ = rollout(env, -(-n // NUM_ENVS), NUM_ENVS, seed, policy)
    frames = seen.reshape(-1, *env.obs_shape)[:n]
    if path is not None:
        files.atomic_write(path, lambda f: np.savez_compressed(f, frames=frames, env_id=env_id, obs=obs, seed=seed,
                                                             policy=policy.tag))
    return frames


def episode(env: envs.Env, policy: Policy, max_steps: int, seed: int = 0) -> np.ndarray:
    """The observations of one game played from reset, up to its end or ``max_steps`` steps."""
    seen, ends = rollout(env, max_steps, 1, seed, policy)
    end = np.flatnonzero(ends[:, 0])
    return seen[: end[0] + 1 if end.size else max_steps, 0]


RGB_MODES = ("ea3c", "ea3c_stack4")  # Atari presets whose frames are RGB (3 channels per frame)
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 weights, what PIL and OpenCV use for grayscale


def screen(obs: jax.Array, env_id: str, obs_mode: str) -> jax.Array:
    """The picture of observations (..., H, W, C) as grayscale (..., H, W) in [0, 1]: the newest
    frame of a frame stack (oldest first: Catch, Atari "nature"), the newest RGB frame in grayscale
    (Atari "ea3c" presets), or the union of MinAtar's object channels (no frame stack there: each
    channel is one object class)."""
    x = jnp.asarray(obs, jnp.float32) / 255.0
    if env_id.startswith("minatar/"):
        return x.max(axis=-1)
    if obs_mode in RGB_MODES:
        return x[..., -3:] @ jnp.asarray(LUMA)
    return x[..., -1]
