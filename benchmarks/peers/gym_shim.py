"""Run-time adapters of ours that let older peer scripts run on today's gymnasium (1.x) and ale-py (>= 0.9).

Nothing here is a peer's code: ``apply()`` registers ALE's environments with gymnasium, restores the
wrapper names that gymnasium 1.0 renamed (``GrayScaleObservation``, ``FrameStack``), gives
``gym.vector.SyncVectorEnv`` gymnasium 0.29's autoreset semantics (an env that ends is reset in the same
step; its last observation and info go to ``infos["final_observation"]`` / ``infos["final_info"]``), and
provides ``distutils.util.strtobool`` where Python (3.12+) no longer ships distutils.
"""
from __future__ import annotations

import sys
import types

import numpy as np


def _strtobool(value: str) -> int:
    value = value.lower()
    if value in ("y", "yes", "t", "true", "on", "1"):
        return 1
    if value in ("n", "no", "f", "false", "off", "0"):
        return 0
    raise ValueError(f"invalid truth value {value!r}")


class OldSyncVectorEnv:
    """gymnasium 0.29's SyncVectorEnv as the scripts of that time use it: same-step autoreset."""

    def __init__(self, env_fns, **_):
        self.envs = [fn() for fn in env_fns]
        self.num_envs = len(self.envs)
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_space = self.single_observation_space
        self.action_space = self.single_action_space

    def reset(self, seed=None, options=None):
        seeds = [None] * self.num_envs if seed is None else [seed + i for i in range(self.num_envs)]
        out = [env.reset(seed=s, options=options) for env, s in zip(self.envs, seeds)]
        return np.stack([o for o, _ in out]), {}

    def step(self, actions):
        obs, rewards, terms, truncs, infos = [], [], [], [], {}
        finals, final_infos = [None] * self.num_envs, [{}] * self.num_envs
        ended = False
        for i, (env, action) in enumerate(zip(self.envs, actions)):
            o, r, term, trunc, info = env.step(action)
            if term or trunc:
                ended = True
                finals[i], final_infos[i] = o, info
                o, _ = env.reset()
            obs.append(o)
            rewards.append(r)
            terms.append(term)
            truncs.append(trunc)
        if ended:
            infos["final_observation"] = np.array(finals, dtype=object)
            infos["final_info"] = final_infos
        return np.stack(obs), np.array(rewards), np.array(terms), np.array(truncs), infos

    def close(self):
        for env in self.envs:
            env.close()


def apply() -> None:
    try:
        import distutils.util  # noqa: F401
    except ImportError:
        util = types.ModuleType("distutils.util")
        util.strtobool = _strtobool
        package = types.ModuleType("distutils")
        package.util = util
        sys.modules["distutils"], sys.modules["distutils.util"] = package, util
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    wrappers = gym.wrappers
    if not hasattr(wrappers, "GrayScaleObservation"):
        wrappers.GrayScaleObservation = wrappers.GrayscaleObservation
    if not hasattr(wrappers, "FrameStack"):
        wrappers.FrameStack = lambda env, num_stack: wrappers.FrameStackObservation(env, num_stack)
    gym.vector.SyncVectorEnv = OldSyncVectorEnv
