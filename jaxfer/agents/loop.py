"""The training loop every agent shares: S seeds x E envs stepped as one pool, agents vmapped.

An ``Agent`` is a set of pure per-seed functions (act, learn, ...). The loop steps all seeds' envs
as ONE batch (``jaxfer.envs.Pool``): envpool's XLA step cannot be vmapped, so the env step sits
between two vmaps over the seed axis, ``vmap(act) -> pool.step -> vmap(learn)``, rather than
inside one vmapped per-seed function. Pure-JAX pools are vmaps themselves, so for them this is the
same computation as vmapping a whole per-seed loop. Every ``rollout_len`` vector steps the agent
stores the rollout and updates from it (1 for replay-based agents, n for n-step actor-critic); before
``learning_starts`` it only stores. That split is static: an epoch that crosses ``learning_starts``
is a collecting scan then an updating scan, each compiled once (``Trainer.warmup_iterations``), except on the
XLA-CPU path, whose agents gate their update in the graph (``jaxfer.code_path``).

``make_loop(cfg, env, agent, path) -> Trainer``: ``init(keys (S,), params=None)`` builds the state
(host side: envpool resets there); ``epoch(state)`` runs ``cfg.epoch_steps`` env steps per seed
and a greedy evaluation and returns ``(state, metrics)`` with a leading seed axis.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxfer import mesh
from jaxfer.code_path import CodePath
from jaxfer.config import TrainConfig
from jaxfer.envs import Env, Pool
from jaxfer.envs import pool as make_pool

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
    store: Callable  # (agent, Rollout) -> agent: what the agent keeps of a rollout (its replay buffer)
    # (agent, Rollout, memory at the rollout's start, env_steps) -> (agent, stats summed over an epoch):
    # one update. env_steps (env steps per seed so far) is one replicated scalar: all seeds step in lockstep.
    update: Callable
    report: Callable  # (agent, summed stats) -> dict of the epoch's metrics
    rollout_len: int
    learning_starts: int = 0  # env steps per seed before the first update


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
    env_steps: jax.Array  # () int32, replicated: env steps per seed, the same for all


class Trainer(NamedTuple):
    init: Callable[..., LoopState]
    epoch: Callable  # (one device's block of a LoopState, warm-up iterations or None) -> (state, metrics)
    agent: Agent
    pool: Pool
    checkpoint: Callable  # state -> the tree a checkpoint holds (of its real seeds: ``mesh.fetch(tree, num)``)
    restore: Callable  # (state, loaded checkpoint tree of the real seeds) -> state, padded and placed
    # state -> the epoch's iterations before learning_starts (its static variant); None: one variant
    warmup_iterations: Callable | None
    path: CodePath  # the run's code path
    num_seeds: int  # the padded seed count the state holds (jaxfer.mesh.padded)


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


def make_loop(cfg: TrainConfig, env: Env, agent: Agent, path: CodePath) -> Trainer:
    n_env, n_eval, horizon = cfg.num_envs, cfg.eval_envs, agent.rollout_len
    num = mesh.padded(cfg.seeds)
    pool = make_pool(env, num, n_env, cfg.seed)
    eval_pool = make_pool(env, num, n_eval, cfg.seed + EVAL_SEED_OFFSET)
    memories = jax.vmap(lambda _: agent.initial_memory(n_env))
    eval_memories = jax.vmap(lambda _: agent.initial_memory(n_eval))
    split4 = jax.vmap(lambda k: tuple(jax.random.split(k, 4)))
    iterations = cfg.epoch_steps // (n_env * horizon)

    def init_block(keys, obs, eval_obs, params=None):
        """One device's agents, memories and keys."""
        k_agent, _, _, key = split4(keys)
        # One seed after another (lax.map, once per run): vmapped LAPACK QR calls (the LSTM's orthogonal
        # init) deadlock XLA CPU in jax 0.10 (4 vmapped 512x512 orthogonal inits never return).
        if params is None:
            agents = jax.lax.map(lambda a: agent.init(a[0], a[1], None), (k_agent, obs))
        else:
            agents = jax.lax.map(lambda a: agent.init(*a), (k_agent, obs, params))
        size = keys.shape[0]
        return (agents, jnp.ones((size, n_env), bool), memories(keys), jnp.ones((size, n_eval), bool),
                eval_memories(keys), key)

    def init(keys: jax.Array, params=None) -> LoopState:
        """The state of ``cfg.seeds`` agents (keys and params: one row per seed), padded and split over
        the devices as it is made."""
        keys = mesh.place(mesh.pad(keys, cfg.seeds))
        _, k_env, k_eval, _ = jax.jit(split4)(keys)
        env_state, obs = pool.reset(k_env)
        eval_env_state, eval_obs = eval_pool.reset(k_eval)
        args = (keys, obs, eval_obs) + (() if params is None else (mesh.place(mesh.pad(params, cfg.seeds)),))
        block = jax.jit(mesh.over_seeds(init_block, mesh.SEED_AXIS, mesh.SEED_AXIS))
        agents, first, memory, eval_first, eval_memory, key = block(*args)
        return LoopState(agents, env_state, obs, first, memory, eval_env_state, eval_obs, eval_first, eval_memory,
                         key, mesh.place(np.int32(0)))

    def checkpoint(state: LoopState):
        if pool.checkpointable:
            return state
        return {"agent": state.agent, "key": state.key, "env_steps": state.env_steps}

    def restore(state: LoopState, saved) -> LoopState:
        placed = mesh.place(mesh.pad(saved, cfg.seeds))
        return placed if pool.checkpointable else state._replace(**placed)

    def env_step(state: LoopState, _):
        split = jax.vmap(lambda k: tuple(jax.random.split(k)))
        key, k_act = split(state.key)
        memory, action = jax.vmap(agent.act)(state.agent, state.memory, state.obs, state.first, k_act)
        env_state, next_obs, reward, done, info = pool.step(state.env_state, action)
        step = Rollout(state.obs, action, reward, done, next_obs, state.first)
        state = state._replace(env_state=env_state, obs=next_obs, first=done, memory=memory, key=key,
                               env_steps=state.env_steps + n_env)
        return state, (step, episode_stats(info))

    update = jax.vmap(agent.update, in_axes=(0, 0, 0, None))

    def iteration(state: LoopState, _, learn: bool):
        memory = state.memory
        state, (rollout, stats) = jax.lax.scan(env_step, state, None, horizon)
        rollout = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), rollout)  # (S, T, E, ...)
        agents = jax.vmap(agent.store)(state.agent, rollout)
        if learn:
            agents, learn_stats = update(agents, rollout, memory, state.env_steps)
        else:
            shapes = jax.eval_shape(update, agents, rollout, memory, state.env_steps)[1]
            learn_stats = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return state._replace(agent=agents), (jax.tree.map(lambda x: x.sum(0), stats), learn_stats)

    def warmup_iterations(state: LoopState) -> int:
        """Iterations of this epoch before ``learning_starts`` (read from the host's copy of the step count)."""
        done = mesh.host_scalar(state.env_steps)
        step = n_env * horizon  # iteration k learns iff done + (k + 1) * step >= learning_starts
        return int(np.clip(-(-(agent.learning_starts - done) // step) - 1, 0, iterations))

    def evaluate(state: LoopState) -> tuple[LoopState, dict]:
        """Greedy play: on pure-JAX envs fresh games each epoch; emulator games continue across epochs."""
        if eval_pool.checkpointable:
            key, k_eval = jax.vmap(lambda k: tuple(jax.random.split(k)))(state.key)
            env_state, obs = eval_pool.block_reset(k_eval)
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

    def epoch(state: LoopState, warmup: int | None = None) -> tuple[LoopState, dict]:
        """One epoch of one device's seeds. ``warmup`` (static) splits it into a scan of that many
        iterations that only store and a scan that always updates: no conditional per step; None:
        every iteration updates (the XLA-CPU path, whose agents gate their update)."""
        chex.assert_shape(state.obs, (None, n_env, *env.obs_shape))
        parts = [(iterations, True)] if warmup is None else [(warmup, False), (iterations - warmup, True)]
        totals = None
        for length, learn in parts:
            if length == 0:
                continue
            state, out = jax.lax.scan(functools.partial(iteration, learn=learn), state, None, length,
                                      unroll=cfg.unroll)
            out = jax.tree.map(lambda x: x.sum(0), out)
            totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
        stats, learn_stats = totals
        state, eval_stats = evaluate(state)
        metrics = summarise(stats, "train_") | summarise(eval_stats, "eval_")
        metrics |= jax.vmap(agent.report)(state.agent, learn_stats)
        return state, metrics | {"env_steps": jnp.broadcast_to(state.env_steps, state.key.shape[:1])}

    return Trainer(init, epoch, agent, pool, checkpoint, restore, path.warmup_split(warmup_iterations), path, num)
