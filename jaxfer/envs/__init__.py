"""Environment registry: ``make("catch/v0", obs="grid")``, ``make("atari/Pong", obs="nature")``."""

from __future__ import annotations

import functools

from jaxfer.envs import atari, catch, minatar
from jaxfer.envs.base import Env, EnvError, Pool, pool

# Observation modes per backend (the part of the id before the "/").
BACKEND_OBS_MODES = {"catch": ("grid", "pixels84"), "minatar": minatar.OBS_MODES, "atari": atari.OBS_MODES}

# id -> factory(obs: str) -> Env. Backends: catch/ (pure JAX), minatar/ (gymnax), atari/ (envpool XLA;
# envpool is imported only when an atari/ env is made).
ENV_IDS = {env_id: functools.partial(catch.make_catch, env_id) for env_id in catch.VERSIONS}
ENV_IDS |= {env_id: functools.partial(minatar.make_minatar, env_id) for env_id in minatar.GAMES}
ENV_IDS |= {env_id: functools.partial(atari.make_atari, env_id) for env_id in atari.GAMES}


def known_env_ids() -> list[str]:
    """Every id, grouped by backend (catch, minatar, atari), sorted within each."""
    order = list(BACKEND_OBS_MODES)
    return sorted(ENV_IDS, key=lambda env_id: (order.index(env_id.split("/")[0]), env_id))


def obs_modes(env_id: str) -> tuple[str, ...]:
    """The observation modes ``env_id`` accepts."""
    return BACKEND_OBS_MODES[env_id.split("/")[0]]


def make(env_id: str, obs: str = "grid") -> Env:
    if env_id not in ENV_IDS:
        raise EnvError(f"unknown env id '{env_id}'; known: {', '.join(known_env_ids())}")
    if obs not in obs_modes(env_id):
        if env_id.startswith("minatar/"):
            ENV_IDS[env_id](obs)  # raises MinAtar's own message (its grid presets)
        raise EnvError(f"unknown obs '{obs}' for {env_id}; allowed: {', '.join(repr(m) for m in obs_modes(env_id))}")
    return ENV_IDS[env_id](obs)


__all__ = ["BACKEND_OBS_MODES", "ENV_IDS", "Env", "EnvError", "Pool", "known_env_ids", "make",
           "obs_modes", "pool"]
