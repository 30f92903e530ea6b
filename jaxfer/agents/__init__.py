"""Agents: ``make_train(cfg, env, freeze=None)`` picks the algorithm named by ``cfg.agent``."""
from __future__ import annotations

from jaxfer.agents import dqn, dqv
from jaxfer.agents.loop import LoopState, Trainer, make_loop
from jaxfer.agents.value_based import make_agent

ALGORITHMS = {"dqn": dqn.algorithm, "dqv": dqv.algorithm, "dqv_max": dqv.max_algorithm}


def make_train(cfg, env, freeze=None) -> Trainer:
    """The training loop of ``cfg.seeds`` agents of kind ``cfg.agent`` on ``env``."""
    return make_loop(cfg, env, make_agent(cfg, env, ALGORITHMS[cfg.agent](cfg, env.num_actions), freeze))


__all__ = ["ALGORITHMS", "LoopState", "Trainer", "make_train"]
