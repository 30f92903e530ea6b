"""Agents: ``make_agent`` / ``make_trainer(cfg, env, freeze=None)`` pick the kind named by ``cfg.agent``
(value-based: dqn, dqv, dqv_max; actor-critic: a2c)."""
from __future__ import annotations

import jax

from jaxfer.agents import a2c, dqn, dqv, value_based
from jaxfer.agents.loop import Agent, LoopState, Trainer, make_loop
from jaxfer.code_path import CodePath
from jaxfer.errors import ConfigError

ALGORITHMS = {"dqn": dqn.algorithm, "dqv": dqv.algorithm, "dqv_max": dqv.max_algorithm}


def make_agent(cfg, env, freeze=None, path: CodePath | None = None) -> Agent:
    """The pure per-seed functions of one ``cfg.agent`` agent on ``env``, on the code path ``path`` (default:
    ``cfg``'s); a network that cannot take the env's observations is a ConfigError (found by tracing,
    before anything is allocated)."""
    path = path or CodePath.from_config(cfg)
    if cfg.agent == "a2c":
        agent = a2c.make_agent(cfg, env, path, freeze)
    else:
        agent = value_based.make_agent(cfg, env, ALGORITHMS[cfg.agent](cfg, env.num_actions, path), path, freeze)
    check_input(cfg, env, agent)
    return agent


def check_input(cfg, env, agent: Agent) -> None:
    obs = jax.ShapeDtypeStruct((cfg.num_envs, *env.obs_shape), env.obs_dtype)
    shrunk = "its layers shrink the input below 1x1"
    try:
        state = jax.eval_shape(lambda k, o: agent.init(k, o, None), jax.random.PRNGKey(0), obs)
        if any(0 in x.shape for x in jax.tree.leaves(state)):  # a newer jax gives empty outputs, not an error
            raise ZeroDivisionError(shrunk)
    except (ValueError, TypeError, ZeroDivisionError) as e:
        reason = shrunk if isinstance(e, ZeroDivisionError) else str(e).splitlines()[0]
        raise ConfigError(f"network '{cfg.network}' cannot take {cfg.env}'s '{cfg.obs}' observations of shape "
                          f"{tuple(env.obs_shape)} ({reason})") from None


def make_trainer(cfg, env, freeze=None, agent: Agent | None = None, path: CodePath | None = None) -> Trainer:
    """The training loop of ``cfg.seeds`` agents of kind ``cfg.agent`` on ``env``, on the code path ``path``
    (default: ``cfg``'s; ``agent`` must have been made on the same)."""
    path = path or CodePath.from_config(cfg)
    return make_loop(cfg, env, agent or make_agent(cfg, env, freeze, path), path)


__all__ = ["ALGORITHMS", "Agent", "LoopState", "Trainer", "make_agent", "make_trainer"]
