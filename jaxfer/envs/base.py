"""The environment interface shared by all jaxfer backends (catch/, later minatar/, atari/)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable


class EnvError(ValueError):
    """Unknown environment id or observation mode."""


@dataclasses.dataclass(frozen=True)
class Env:
    """A pure-functional environment.

    ``reset(key) -> (state, obs)`` and ``step(state, action, key) -> (state, obs, reward, done, info)``
    are pure, jittable and vmappable. ``step`` auto-resets: on ``done`` it returns the state and
    first observation of a fresh episode, while ``reward``, ``done`` and ``info`` describe the step
    that just happened.
    """

    id: str
    num_actions: int
    obs_shape: tuple
    obs_dtype: Any
    reset: Callable
    step: Callable
