"""MinAtar (Young & Tian 2019) through gymnax, in pure JAX: the CPU-sized Atari stand-ins.

Observations are 10x10 maps with one channel per object class, as uint8 0/255 so every jaxfer
network sees the same input convention. gymnax auto-resets; an episode that ends by the time limit
(truncation) is treated as terminal, like Catch's.

Two observation presets:
- ``grid`` (default): gymnax's native channels, 4, 6, 7 or 10 per game, so only games with the same
  count (Breakout, Asterix) can share conv layers.
- ``grid_common``: every game's channels mapped by object role into one layout of ``len(ROLES)``
  channels, so any pair of games can share them. A channel is the union (max) of the native channels
  mapped to it. Roles rather than all channels side by side: a frozen conv layer copied from a game
  keeps trained weights only for the channels that game lit.

Native channels (gymnax 1.0, MinAtar's order) and their common role:

=============  ==============================================================================
game           native channel -> role
=============  ==============================================================================
Breakout       0 paddle -> player, 1 ball -> player_shot, 2 ball trail -> trail, 3 brick -> brick
Asterix        0 player -> player, 1 enemy -> enemy, 2 trail -> trail, 3 gold -> collectible
Freeway        0 chicken -> player, 1 car -> enemy, 2-6 car trails (speeds 1-5) -> trail
SpaceInvaders  0 cannon -> player, 1 alien -> enemy, 2 alien moving left / 3 alien moving right ->
               trail one cell behind each alien (the cell it came from, as the other games' trails),
               4 friendly bullet -> player_shot, 5 enemy bullet -> enemy_shot
Seaquest       0 sub front -> player, 1 sub back -> trail, 2 friendly bullet -> player_shot,
               3 trail -> trail, 4 enemy bullet -> enemy_shot, 5 enemy fish / 6 enemy sub -> enemy,
               7 oxygen gauge / 8 diver gauge -> gauge, 9 diver -> collectible
=============  ==============================================================================

jaxfer's variants (not MinAtar's; they widen the games transfer predictors are validated on):
``minatar/<Game>-flip`` is the game seen upside down, each observation's rows reversed, with the same
dynamics, actions and native channels (Breakout's paddle at the top, Freeway's chicken walking down).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxfer.envs.base import Env, EnvError

GAMES = {f"minatar/{g}": f"{g}-MinAtar" for g in ("Breakout", "SpaceInvaders", "Seaquest", "Asterix", "Freeway")}
FLIPPED = {f"minatar/{g}-flip": f"minatar/{g}" for g in ("Breakout", "SpaceInvaders", "Freeway")}  # -> its game
GAMES |= {variant: GAMES[game] for variant, game in FLIPPED.items()}
OBS_MODES = ("grid", "grid_common")
ROLES = ("player", "enemy", "player_shot", "enemy_shot", "collectible", "brick", "trail", "gauge")
# Per game, the role of each native channel in order; None: handled apart (SpaceInvaders' direction maps).
NATIVE_ROLES = {
    "minatar/Breakout": ("player", "player_shot", "trail", "brick"),
    "minatar/Asterix": ("player", "enemy", "trail", "collectible"),
    "minatar/Freeway": ("player", "enemy") + ("trail",) * 5,
    "minatar/SpaceInvaders": ("player", "enemy", None, None, "player_shot", "enemy_shot"),
    "minatar/Seaquest": ("player", "trail", "player_shot", "trail", "enemy_shot", "enemy", "enemy", "gauge", "gauge",
                         "collectible"),
}


class MinAtarState(NamedTuple):
    inner: Any  # gymnax's env state
    ep_return: jax.Array
    ep_length: jax.Array


def base_game(env_id: str) -> str:
    """The MinAtar game an id plays: itself, or the game a ``-flip`` variant shows upside down."""
    return FLIPPED.get(env_id, env_id)


def role_matrix(env_id: str) -> np.ndarray:
    """(native channels, roles) 0/1 matrix: native channel c feeds role r."""
    roles = NATIVE_ROLES[base_game(env_id)]
    m = np.zeros((len(roles), len(ROLES)), np.float32)
    for c, role in enumerate(roles):
        if role is not None:
            m[c, ROLES.index(role)] = 1.0
    return m


def common_obs(x: jax.Array, env_id: str) -> jax.Array:
    """Native 0/1 channels (..., 10, 10, C) -> the common role layout (..., 10, 10, len(ROLES))."""
    chex.assert_axis_dimension(x, -1, len(NATIVE_ROLES[base_game(env_id)]))
    out = jnp.minimum(x.astype(jnp.float32) @ role_matrix(env_id), 1.0)
    if base_game(env_id) == "minatar/SpaceInvaders":  # aliens moving left came from x + 1, moving right from x - 1
        left, right = x[..., 2].astype(jnp.float32), x[..., 3].astype(jnp.float32)
        pad = [(0, 0)] * (x.ndim - 2)
        behind = jnp.maximum(jnp.pad(left[..., :-1], pad + [(1, 0)]), jnp.pad(right[..., 1:], pad + [(0, 1)]))
        out = out.at[..., ROLES.index("trail")].max(behind)
    return out


def _obs(x):
    return (x * 255).astype(jnp.uint8)


def make_minatar(env_id: str, obs: str = "grid") -> Env:
    if obs not in OBS_MODES:
        raise EnvError(f"{env_id} has the observations {', '.join(repr(m) for m in OBS_MODES)} "
                       f"(10x10 object channels: native or common roles), not '{obs}'")
    import gymnax  # imported here: it is slow to import and only MinAtar needs it

    env, params = gymnax.make(GAMES[env_id])
    native = env.observation_space(params).shape
    layout = (lambda o: _obs(common_obs(o, env_id))) if obs == "grid_common" else _obs
    view = (lambda o: layout(o)[::-1]) if env_id in FLIPPED else layout
    shape = (*native[:2], len(ROLES)) if obs == "grid_common" else tuple(native)

    def reset(key):
        o, inner = env.reset(key, params)
        return MinAtarState(inner, jnp.float32(0), jnp.int32(0)), view(o)

    def step(state: MinAtarState, action, key):
        o, inner, reward, terminated, truncated, _ = env.step(key, state.inner, action, params)
        reward = reward.astype(jnp.float32)
        done = jnp.logical_or(terminated, truncated)
        ep_return, ep_length = state.ep_return + reward, state.ep_length + 1
        info = {"episode_return": jnp.where(done, ep_return, 0.0), "episode_length": jnp.where(done, ep_length, 0)}
        keep = jnp.logical_not(done)
        new = MinAtarState(inner, jnp.where(keep, ep_return, 0.0), jnp.where(keep, ep_length, 0))
        return new, view(o), reward, done, info

    return Env(id=env_id, num_actions=env.num_actions, obs_shape=shape, obs_dtype=np.uint8,
               reset=reset, step=step)
