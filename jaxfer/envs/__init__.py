"""Environment registry: ``make("catch/v0", obs="grid")``."""

from __future__ import annotations

import functools

from jaxfer.envs import catch, minatar
from jaxfer.envs.base import Env, EnvError, Pool, pool

OBS_MODES = ("grid", "pixels84")

# id -> factory(obs: str) -> Env. Backends: catch/ (pure JAX), minatar/ (gymnax); atari/ comes next.
ENV_IDS = {env_id: functools.partial(catch.make_catch, env_id) for env_id in catch.VERSIONS}
ENV_IDS |= {env_id: functools.partial(minatar.make_minatar, env_id) for env_id in minatar.GAMES}


def known_env_ids() -> list[str]:
    return sorted(ENV_IDS)


def make(env_id: str, obs: str = "grid") -> Env:
    if env_id not in ENV_IDS:
        raise EnvError(f"unknown env id '{env_id}'; known: {', '.join(known_env_ids())}")
    if obs not in OBS_MODES:
        raise EnvError(f"unknown obs '{obs}'; allowed: {', '.join(repr(m) for m in OBS_MODES)}")
    return ENV_IDS[env_id](obs)


__all__ = ["ENV_IDS", "OBS_MODES", "Env", "EnvError", "Pool", "known_env_ids", "make", "pool"]
