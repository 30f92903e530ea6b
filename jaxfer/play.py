"""Watching a trained agent: the greedy policy of a finished run plays N games; the mean score with a
bootstrap CI, and a GIF of the first game.

It runs the agent's own ``greedy`` (``jaxfer.agents``), so every agent and network plays as it was
evaluated in training, recurrent memory included; one env per game, all games at once.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxfer import agents, envs, stats
from jaxfer.dptl import frames
from jaxfer.errors import JaxferError
from jaxfer.runtime import files, rundir

MAX_STEPS = 27_000  # Atari's game limit (agent steps); every game here ends before it


class PlayError(JaxferError):
    """A run that cannot play the asked game: the message is one line."""


def load_agent(run_dir: Path, seed_index: int, game: str | None):
    """(agent, its params for ``seed_index``, env, run config) of a finished run directory."""
    run = rundir.load_finished(run_dir, PlayError)
    try:
        env = envs.make(game or run.cfg.env, run.cfg.obs)
    except envs.EnvError as e:
        raise PlayError(str(e)) from None
    home = run.env
    if (env.num_actions, env.obs_shape) != (home.num_actions, home.obs_shape):
        raise PlayError(f"the agent of {run.cfg.env} ({home.num_actions} actions, observations {home.obs_shape}) "
                        f"cannot play {env.id} ({env.num_actions} actions, observations {env.obs_shape})")
    if not 0 <= seed_index < run.num_seeds:
        raise PlayError(f"{run_dir} holds {run.num_seeds} seeds; --seed-index {seed_index} is out of range")
    agent = run.agent if env.id == home.id else agents.make_agent(run.cfg, env)
    return agent, jax.tree.map(lambda x: jnp.asarray(x[seed_index]), run.params), env, run.cfg


def play(run_dir: Path, game: str | None = None, episodes: int = 10, gif: Path | None = None,
         seed_index: int = 0, seed: int = 0) -> dict:
    """Scores of ``episodes`` greedy games (their first game in each of ``episodes`` envs)."""
    if episodes < 1:
        raise PlayError(f"--episodes must be >= 1, got {episodes}")
    if gif is not None:  # before any game is played
        above = next(p for p in Path(gif).absolute().parents if p.exists())
        if Path(gif).is_dir() or not above.is_dir():
            raise PlayError(f"--gif {gif}: {'is a directory' if Path(gif).is_dir() else f'{above} is a file'}; "
                            "name a .gif file in a directory")
    agent, params, env, cfg = load_agent(Path(run_dir), seed_index, game)
    pool = envs.pool(env, 1, episodes, seed)
    state, obs = pool.reset(jax.random.PRNGKey(seed)[None])
    memory, first = agent.initial_memory(episodes), jnp.ones((1, episodes), bool)

    @jax.jit
    def step(state, obs, memory, first):
        memory, action = agent.greedy(params, memory, obs[0], first[0])
        state, obs, _, done, info = pool.step(state, action[None])
        return state, obs, memory, done, info["episode_end"][0], info["episode_return"][0]

    scores = np.full(episodes, np.nan)
    pictures = [np.asarray(frames.screen(obs[0, 0], env.id, cfg.obs))]
    for _ in range(MAX_STEPS):
        state, obs, memory, first, ended, returns = step(state, obs, memory, first)
        ended, returns = np.asarray(ended), np.asarray(returns)
        if np.isnan(scores[0]):  # the first game, for the GIF
            pictures.append(np.asarray(frames.screen(obs[0, 0], env.id, cfg.obs)))
        scores = np.where(np.isnan(scores) & ended, returns, scores)
        if not np.isnan(scores).any():
            break
    done = scores[~np.isnan(scores)]
    if len(done) == 0:
        raise PlayError(f"no game of {env.id} ended within {MAX_STEPS} steps")
    low, high = stats.bootstrap_ci(done)  # one game: low = high = its score
    if gif is not None:
        files.save_gif(Path(gif), [(np.clip(p, 0, 1) * 255).astype(np.uint8) for p in pictures])
    return {"env": env.id, "episodes": len(done), "scores": done.tolist(), "mean": float(done.mean()),
            "ci_low": float(low), "ci_high": float(high), "gif": gif, "gif_frames": len(pictures)}
