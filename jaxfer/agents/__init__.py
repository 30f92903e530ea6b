"""Agents: ``make_agent`` / ``make_train(cfg, env, freeze=None)`` pick the kind named by ``cfg.agent``."""
from __future__ import annotations

from jaxfer.agents import dqn, dqv, value_based
from jaxfer.agents.loop import Agent, LoopState, Trainer, make_loop

ALGORITHMS = {"dqn": dqn.algorithm, "dqv": dqv.algorithm, "dqv_max": dqv.max_algorithm}


def make_agent(cfg, env, freeze=None) -> Agent:
    """The pure per-seed functions of one ``cfg.agent`` agent on ``env``."""
    return value_based.make_agent(cfg, env, ALGORITHMS[cfg.agent](cfg, env.num_actions), freeze)


def make_train(cfg, env, freeze=None, agent: Agent | None = None) -> Trainer:
    """The training loop of ``cfg.seeds`` agents of kind ``cfg.agent`` on ``env``."""
    return make_loop(cfg, env, agent or make_agent(cfg, env, freeze))


__all__ = ["ALGORITHMS", "Agent", "LoopState", "Trainer", "make_agent", "make_train"]
