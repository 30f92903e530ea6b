"""Agents: ``make_train(cfg, env, freeze=None)`` picks the algorithm named by ``cfg.agent``."""
from __future__ import annotations

from jaxfer.agents import dqn, dqv
from jaxfer.agents.value_based import Trainer, TrainState, make_train as _make_train

ALGORITHMS = {"dqn": dqn.algorithm, "dqv": dqv.algorithm, "dqv_max": dqv.max_algorithm}


def make_train(cfg, env, freeze=None) -> Trainer:
    """Pure, jittable training functions for one agent of ``cfg.agent`` on ``env``."""
    return _make_train(cfg, env, ALGORITHMS[cfg.agent](cfg, env.num_actions), freeze)


__all__ = ["ALGORITHMS", "Trainer", "TrainState", "make_train"]
