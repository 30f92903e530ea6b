"""The training loop every agent shares: S seeds x E envs stepped as one pool, agents vmapped.

An ``Agent`` is a set of pure per-seed functions (act, learn, ...). The loop steps all seeds' envs
as ONE batch (``jaxfer.envs.Pool``): envpool's XLA step cannot be vmapped, so the env step sits
between two vmaps over the seed axis, ``vmap(act) -> pool.step -> vmap(learn)``, rather than
inside one vmapped per-seed function. Pure-JAX pools are vmaps themselves, so for them this is the
same computation as vmapping a whole per-seed loop. Every ``rollout_len`` vector steps the agent
learns from the rollout (1 for replay-based agents, n for n-step actor-critic).

``make_loop(cfg, env, agent) -> Trainer``: ``init(keys (S,), params=None)`` builds the state
(host side: envpool resets there); ``epoch(state)`` runs ``cfg.epoch_steps`` env steps per seed
and a greedy evaluation and returns ``(state, metrics)`` with a leading seed axis.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp

from jaxfer import seeds
from jaxfer.config import TrainConfig
from jaxfer.envs import Env, Pool, pool as make_pool

EVAL_SEED_OFFSET = 1_000_003  # eval games never share a seed with training games


class Rollout(NamedTuple):
    """``rollout_len`` vector steps of one seed's envs; leaves are (T, E, ...)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    done: jax.Array  # no bootstrapping past this step
    next_obs: jax.Array
    first: jax.Array  # obs is the first of an episode (where recurrent agents reset their memory)


class Agent(NamedTuple):
    """Pure functions of one seed's agent; the loop adds the seed axis."""

    init: Callable  # (key, obs (E, ...), params or None) -> agent state with a ``params`` field
    initial_memory: Callable  # (num_envs) -> per-env recurrent memory; () for feed-forward agents
    act: Callable  # (agent, memory, obs, first, key) -> (memory, action (E,)): the exploring policy
    greedy: Callable  # (params, memory, obs, first) -> (memory, action): the evaluated policy
    # (agent, Rollout, memory at the rollout's start, env_steps) -> (agent, stats summed over an epoch).
    # env_steps (env steps per seed so far) is one scalar for all seeds, which step in lockstep: a
    # lax.cond on it stays a branch under vmap instead of becoming a select that runs both sides.
    learn: Callable
    report: Callable  # (agent, summed stats) -> dict of the epoch's metrics
    rollout_len: int


class LoopState(NamedTuple):
    agent: Any  # every leaf has a leading seed axis, as below
    env_state: Any
    obs: jax.Array  # (S, E, *obs_shape)
    first: jax.Array  # (S, E)
    memory: Any
    eval_env_state: Any
    eval_obs: jax.Array
    eval_first: jax.Array
    eval_memory: Any
    key: jax.Array  # (S,) per seed
    env_steps: jax.Array  # (S,) int32


class Trainer(NamedTuple):
    init: Callable[..., LoopState]
    epoch: Callable[[LoopState], tuple[LoopState, dict]]
    agent: Agent
    pool: Pool
    checkpoint: Callable  # state -> the tree a checkpoint holds
    restore: Callable  # (state, loaded checkpoint tree) -> state


def episode_stats(info: dict) -> dict:
    """Per-seed sums over envs of finished real games (and caught balls on Catch)."""
    end = info["episode_end"]
    stats = {"return_sum": jnp.sum(info["episode_return"] * end, -1), "episodes": jnp.sum(end, -1)}
    if "caught" in info:
        stats |= {"caught": jnp.sum(info["caught"], -1), "landed": jnp.sum(info["ball_landed"], -1)}
    return stats


def summarise(stats: dict, prefix: str) -> dict:
    out = {f"{prefix}return": stats["return_sum"] / jnp.maximum(stats["episodes"], 1),
           f"{prefix}episodes": stats["episodes"]}
    if "caught" in stats:
        out[f"{prefix}catch_rate"] = stats["caught"] / jnp.maximum(stats["landed"], 1)
    return out


def make_loop(cfg: TrainConfig, env: Env, agent: Agent) -> Trainer:
    n_env, n_eval, horizon = cfg.num_envs, cfg.eval_envs, agent.rollout_len
    pool = make_pool(env, cfg.seeds, n_env, cfg.seed)
    eval_pool = make_pool(env, cfg.seeds, n_eval, cfg.seed + EVAL_SEED_OFFSET)
    memories = jax.vmap(lambda _: agent.initial_memory(n_env))
    eval_memories = jax.vmap(lambda _: agent.initial_memory(n_eval))

    def init(keys: jax.Array, params=None) -> LoopState:
        split = jax.vmap(lambda k: jax.random.split(k, 4))(keys)
        k_agent, k_env, k_eval, key = (split[:, i] for i in range(4))
        env_state, obs = pool.reset(k_env)
        eval_env_state, eval_obs = eval_pool.reset(k_eval)
        # One seed after another (lax.map, once per run): vmapped LAPACK QR calls (the LSTM's orthogonal
        # init) deadlock XLA CPU in jax 0.10 (4 vmapped 512x512 orthogonal inits never return).
        one = (lambda a: agent.init(a[0], a[1], None)) if params is None else (lambda a: agent.init(*a))
        agents = jax.jit(lambda *a: jax.lax.map(one, a))(
            *((k_agent, obs) if params is None else (k_agent, obs, params)))
        num = keys.shape[0]
        state = LoopState(agents, env_state, obs, jnp.ones((num, n_env), bool), memories(keys),
                          eval_env_state, eval_obs, jnp.ones((num, n_eval), bool), eval_memories(keys),
                          key, jnp.zeros(num, jnp.int32))
        return place(state)

    def place(state: LoopState) -> LoopState:
        """Shard the seed axis over devices; an emulator pool stays whole on its one device."""
        if pool.checkpointable:
            return seeds.place(state, cfg.seeds)
        sharded = seeds.place(state._replace(env_state=None, eval_env_state=None), cfg.seeds)
        return sharded._replace(env_state=state.env_state, eval_env_state=state.eval_env_state)

    def checkpoint(state: LoopState):
        if pool.checkpointable:
            return state
        return {"agent": state.agent, "key": state.key, "env_steps": state.env_steps}

    def restore(state: LoopState, saved) -> LoopState:
        if pool.checkpointable:
            return place(saved)
        return place(state._replace(**saved))

    def env_step(state: LoopState, _):
        split = jax.vmap(lambda k: tuple(jax.random.split(k)))
        key, k_act = split(state.key)
        memory, action = jax.vmap(agent.act)(state.agent, state.memory, state.obs, state.first, k_act)
        env_state, next_obs, reward, done, info = pool.step(state.env_state, action)
        step = Rollout(state.obs, action, reward, done, next_obs, state.first)
        state = state._replace(env_state=env_state, obs=next_obs, first=done, memory=memory, key=key,
                               env_steps=state.env_steps + n_env)
        return state, (step, episode_stats(info))

    def iteration(state: LoopState, _):
        memory = state.memory
        state, (rollout, stats) = jax.lax.scan(env_step, state, None, horizon)
        rollout = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), rollout)  # (S, T, E, ...)
        agents, learn_stats = jax.vmap(agent.learn, in_axes=(0, 0, 0, None))(
            state.agent, rollout, memory, state.env_steps[0])
        return state._replace(agent=agents), (jax.tree.map(lambda x: x.sum(0), stats), learn_stats)

    def evaluate(state: LoopState) -> tuple[LoopState, dict]:
        """Greedy play: on pure-JAX envs fresh games each epoch; emulator games continue across epochs."""
        if eval_pool.checkpointable:
            key, k_eval = jax.vmap(lambda k: tuple(jax.random.split(k)))(state.key)
            env_state, obs = eval_pool.reset(k_eval)
            first, memory = jnp.ones_like(state.eval_first), eval_memories(key)
            state = state._replace(key=key)
        else:
            env_state, obs, first, memory = state.eval_env_state, state.eval_obs, state.eval_first, state.eval_memory
        params = state.agent.params

        def step(carry, _):
            env_state, obs, first, memory = carry
            memory, action = jax.vmap(agent.greedy)(params, memory, obs, first)
            env_state, obs, _, done, info = eval_pool.step(env_state, action)
            return (env_state, obs, done, memory), episode_stats(info)

        (env_state, obs, first, memory), stats = jax.lax.scan(step, (env_state, obs, first, memory), None,
                                                              cfg.eval_steps)
        state = state._replace(eval_env_state=env_state, eval_obs=obs, eval_first=first, eval_memory=memory)
        return state, jax.tree.map(lambda x: x.sum(0), stats)

    def epoch(state: LoopState) -> tuple[LoopState, dict]:
        chex.assert_shape(state.obs, (None, n_env, *env.obs_shape))
        iterations = cfg.epoch_steps // (n_env * horizon)
        state, (stats, learn_stats) = jax.lax.scan(iteration, state, None, iterations, unroll=cfg.unroll)
        state, eval_stats = evaluate(state)
        metrics = summarise(jax.tree.map(lambda x: x.sum(0), stats), "train_") | summarise(eval_stats, "eval_")
        metrics |= jax.vmap(agent.report)(state.agent, jax.tree.map(lambda x: x.sum(0), learn_stats))
        return state, metrics | {"env_steps": state.env_steps}

    return Trainer(init, epoch, agent, pool, checkpoint, restore)
