"""Training one run: ``train(cfg, out)``, the agents' epochs compiled over the seed mesh and driven by
the host loop (``host_loop``), then params.npz, the learning curve and run.json.

One compiled call advances every seed by one epoch; between calls the host appends the epoch's
metrics, rewrites ``metrics.csv`` and the checkpoint atomically, and updates the progress bar. A run
restarted with the same command and directory resumes from its checkpoint and ends with the same
numbers as an uninterrupted run (same device count and strategy: different batch shapes may round
differently, and RL amplifies that over long runs).
"""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxfer import agents, envs, mesh
from jaxfer.code_path import CodePath
from jaxfer.config import TrainConfig, to_dict
from jaxfer.errors import ConfigError
from jaxfer.runtime import budget, files, host_loop, plots, rundir, seed_axis, tracking
from jaxfer.runtime.rundir import CHECKPOINT, CURVE, PARAMS, RUN_JSON


def environment_info() -> dict:
    versions = {p: metadata.version(p) for p in ("jax", "jaxlib", "flax", "optax", "chex", "numpy")}
    dev = jax.devices()[0]
    return {
        "versions": versions | {"python": platform.python_version()},
        "device": {"platform": dev.platform, "kind": dev.device_kind, "count": jax.device_count(),
                   "used": mesh.device_count(), "processes": jax.process_count()},
        "cpu_count": os.cpu_count(),
    }


def holds_finished_run(out: Path, cfg: TrainConfig) -> bool:
    """May ``out`` hold this run? True if it already holds a finished run of the same config."""
    if rundir.check_claim(out, to_dict(cfg), "a run"):
        return (out / RUN_JSON).exists()
    if out.exists() and any(p.name != rundir.LOCK for p in out.iterdir()):
        raise ConfigError(f"{out} exists and is not a jaxfer run directory; pass another --out")
    return False


def metric_rows(epoch: int, metrics: dict) -> list[dict]:
    num_seeds = len(metrics["env_steps"])
    return [{"epoch": epoch, "seed": s} | {k: v[s].item() for k, v in metrics.items()} for s in range(num_seeds)]


def train(cfg: TrainConfig, out: Path, progress: bool = True, init_params=None, freeze=None,
          meta: dict | None = None, track: bool = False) -> dict:
    """Train ``cfg.seeds`` agents into ``out``; resumes a checkpoint there. Returns the run summary.

    ``init_params`` (seed axis first) start the agents from given weights, e.g. transferred layers;
    ``freeze`` (a tree of bools without the seed axis) keeps layers fixed; ``meta`` goes to run.json;
    ``track`` also sends the metrics to Weights & Biases.
    In a multi-process run every process calls this with the same arguments (``mesh.agree`` checks) inside
    ``mesh.together()``; process 0 writes the files.
    """
    out = Path(out)
    mesh.agree("config", {"config": to_dict(cfg), "out": str(out), "devices": mesh.device_count(),
                           "local_devices": len(mesh.local_positions()), "transferred": init_params is not None})
    env = envs.make(cfg.env, cfg.obs)
    path = CodePath.from_config(cfg)  # the run's one code path
    agent = agents.make_agent(cfg, env, freeze, path)
    needs = budget.estimate(agent, env, cfg.num_envs, cfg.seeds, cfg.eval_envs)
    budget.check(needs)
    with rundir.held(out):  # one writer per run directory, before any check of it
        return _train(cfg, out, env, agent, path, needs, progress, init_params, meta, track)


def _train(cfg: TrainConfig, out: Path, env, agent, path: CodePath, needs: dict, progress: bool, init_params, meta,
           track: bool) -> dict:
    writes = jax.process_index() == 0
    if holds_finished_run(out, cfg):
        return io_summary(out)
    progress = progress and writes
    if progress:
        print(budget.describe(needs), file=sys.stderr)
    trainer = agents.make_trainer(cfg, env, agent=agent, path=path)
    state = trainer.init(mesh.seed_keys(cfg.seed, cfg.seeds), init_params)
    state, start, rows = resume(out, cfg, trainer, state)
    mesh.agree("checkpoint (every process must see the same --out: a shared file system)", start)
    epoch_fn, _ = seed_axis.compile_trainer(trainer, state, cfg.strategy)  # checks working memory
    mesh.barrier()  # no process claims it before all have checked it
    if writes:
        rundir.write_claim(out, to_dict(cfg))

    tracker = tracking.Tracker(out, out.name, to_dict(cfg), cfg.tensorboard and writes, track and writes)
    with host_loop.HostLoop(out, start, cfg.num_epochs, rows, f"{cfg.env} x{cfg.seeds}", progress,
                            lambda: epoch_fn.compile_seconds, cfg.checkpoint_every_s, cfg.keep_checkpoint) as loop:
        for epoch in loop:
            state, metrics = epoch_fn(state)
            checkpoint = trainer.checkpoint(state) if loop.checkpoint_due(epoch) else None
            metrics, snapshot = mesh.fetch((metrics, checkpoint), cfg.seeds)  # own copies: the next epoch
            seconds = loop.record(epoch, metric_rows(epoch, metrics), snapshot)  # donates the buffers
            headline = plots.curve_metric([metrics])  # catch rate on Catch, return elsewhere
            rate = cfg.seeds * cfg.epoch_steps / seconds
            tracker.epoch(metrics, (epoch + 1) * cfg.epoch_steps, rate)
            loop.show(**{"steps/s": f"{rate:.0f}", headline: f"{metrics[headline].mean():.3f}"})
    tracker.close()

    rows = loop.rows
    summary = run_summary(cfg, meta, trainer, epoch_fn, loop.seconds, start, needs, rows)
    params = mesh.fetch(state.agent.params, cfg.seeds)
    if writes:
        files.save_tree(out / PARAMS, params)
        label = {"dqn": "Double DQN" if cfg.double else "DQN", "dqv": "DQV", "dqv_max": "DQV-Max",
                 "a2c": "A2C"}[cfg.agent]
        metric = plots.curve_metric(rows)
        plots.learning_curve(out / CURVE, {label: plots.seed_matrix(rows, metric)}, cfg.env, metric)
        files.write_json(out / RUN_JSON, summary)  # the finished mark: the checkpoint is no longer needed
        if not cfg.keep_checkpoint:
            (out / CHECKPOINT).unlink(missing_ok=True)
    mesh.barrier()  # no process reads the results before they are there
    return summary


def resume(out: Path, cfg: TrainConfig, trainer, state):
    """(state, first epoch, metric rows so far): from ``out``'s checkpoint where there is one."""
    saved, start, rows = host_loop.resume(out, mesh.shapes(trainer.checkpoint(state), cfg.seeds), cfg.seeds)
    return (state if saved is None else trainer.restore(state, saved)), start, rows


def run_summary(cfg: TrainConfig, meta, trainer, epoch_fn: seed_axis.EpochFn, epoch_seconds: list, start: int,
                needs: dict, rows: list[dict]) -> dict:
    """run.json: the config, where and how it ran, its speed (compile apart) and final metrics."""
    steady = epoch_seconds[1:] or epoch_seconds
    return {
        "config": to_dict(cfg),
        **(meta or {}),
        **environment_info(),
        "code_path": trainer.path.record() | {"seeds_computed": trainer.num_seeds, "strategy": epoch_fn.strategy},
        "compile_seconds": round(epoch_fn.compile_seconds, 3),
        "steady_env_steps_per_s": round(cfg.seeds * cfg.epoch_steps * len(steady) / sum(steady), 1) if steady else None,
        "epochs_timed": len(steady),
        "resumed_from_epoch": start,
        "env_options": trainer.pool.options,
        "memory_bytes": needs,
        "final": final_metrics(rows, cfg.num_epochs - 1),
    }


def init_params(cfg: TrainConfig, env: envs.Env | None = None):
    """The fresh parameters (seed axis first) that ``train(cfg, ...)`` would start from, without
    making the rest of a run (replay buffers, environments); ``env``: a trainer's own (default: cfg's)."""
    env = env or envs.make(cfg.env, cfg.obs)
    agent = agents.make_agent(cfg, env)
    obs = jnp.zeros((cfg.num_envs, *env.obs_shape), env.obs_dtype)  # only its shape matters
    k_agent = jax.vmap(lambda k: jax.random.split(k, 4)[0])(mesh.seed_keys(cfg.seed, cfg.seeds))
    return jax.jit(lambda keys: jax.lax.map(lambda k: agent.init(k, obs, None).params, keys))(k_agent)


def final_metrics(rows: list[dict], epoch: int) -> dict:
    last = [r for r in rows if int(r["epoch"]) == epoch]
    keys = [k for k in last[0] if k not in ("epoch", "seed")]
    per_seed = {k: [float(r[k]) for r in last] for k in keys}
    return {"per_seed": per_seed, "mean": {k: float(np.mean(v)) for k, v in per_seed.items()}}


def io_summary(out: Path) -> dict:
    return files.read_json(out / RUN_JSON, ("final", "compile_seconds", "steady_env_steps_per_s")) | {
        "already_finished": True}
