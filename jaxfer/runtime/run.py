"""The host loop: chunks of jitted training, progress, metrics, checkpoints, resume, outputs.

One compiled call advances every seed by one epoch; between calls the host appends the epoch's
metrics, rewrites ``metrics.csv`` and the checkpoint atomically, and updates the progress bar. A run
restarted with the same command and directory resumes from its checkpoint and ends with the same
numbers as an uninterrupted run (same device count and strategy: different batch shapes may round
differently, and RL amplifies that over long runs).
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxfer import agents, envs
from jaxfer.config import ConfigError, TrainConfig, to_dict
from jaxfer.report import plots
from jaxfer.runtime import budget, files, rundir, seeds, tracking
from jaxfer.runtime.code_path import CodePath

CONFIG = rundir.CLAIM
CHECKPOINT, METRICS, RUN_JSON, PARAMS, CURVE = (
    "checkpoint.npz", "metrics.csv", "run.json", "params.npz", "learning_curve.png")


def environment_info() -> dict:
    versions = {p: metadata.version(p) for p in ("jax", "jaxlib", "flax", "optax", "chex", "numpy")}
    dev = jax.devices()[0]
    return {
        "versions": versions | {"python": platform.python_version()},
        "device": {"platform": dev.platform, "kind": dev.device_kind, "count": jax.device_count(),
                   "used": seeds.device_count(), "processes": jax.process_count()},
        "cpu_count": os.cpu_count(),
    }


def check_dir(out: Path, cfg: TrainConfig) -> bool:
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
    In a multi-process run every process calls this with the same arguments (``seeds.agree`` checks) inside
    ``seeds.together()``; process 0 writes the files.
    """
    out = Path(out)
    seeds.agree("config", {"config": to_dict(cfg), "out": str(out), "devices": seeds.device_count(),
                           "local_devices": len(seeds.local_positions()), "transferred": init_params is not None})
    env = envs.make(cfg.env, cfg.obs)
    path = CodePath.from_config(cfg)  # the run's one code path
    agent = agents.make_agent(cfg, env, freeze, path)
    needs = budget.estimate(agent, env, cfg.num_envs, cfg.seeds)
    budget.check(needs)
    with rundir.held(out):  # one writer per run directory, before any check of it
        return _train(cfg, out, env, agent, path, needs, progress, init_params, meta, track)


def _train(cfg: TrainConfig, out: Path, env, agent, path: CodePath, needs: dict, progress: bool, init_params, meta,
           track: bool) -> dict:
    writes = jax.process_index() == 0
    if check_dir(out, cfg):
        return io_summary(out)
    progress = progress and writes
    if progress:
        print(budget.describe(needs), file=sys.stderr)
    trainer = agents.make_train(cfg, env, agent=agent, path=path)
    state = trainer.init(seeds.seed_keys(cfg.seed, cfg.seeds), init_params)
    state, start, rows = resume(out, cfg, trainer, state)
    seeds.agree("checkpoint (every process must see the same --out: a shared file system)", start)
    epoch_fn, _ = seeds.compile_over_seeds(trainer.epoch, state, cfg.strategy, sliceable=trainer.pool.checkpointable,
                                           phase=trainer.phase, path=path)  # checks working memory
    seeds.barrier()  # no process claims it before all have checked it
    if writes:
        rundir.write_claim(out, to_dict(cfg))

    tracker = tracking.Tracker(out, out.name, to_dict(cfg), cfg.tensorboard and writes, track and writes)
    bar = tqdm(total=cfg.num_epochs, initial=start, desc=f"{cfg.env} x{cfg.seeds}", unit="epoch",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)
    epoch_seconds = []
    writer, pending = ThreadPoolExecutor(max_workers=1), None  # checkpoints are written behind the next epoch
    for epoch in range(start, cfg.num_epochs):
        tick, compiled = time.perf_counter(), epoch_fn.compile_seconds
        state, metrics = epoch_fn(state)
        metrics, snapshot = seeds.fetch((metrics, trainer.checkpoint(state)), cfg.seeds)  # own copies: the
        rows += metric_rows(epoch, metrics)  # next epoch donates the buffers
        if writes:
            files.write_csv(out / METRICS, rows)
            if pending is not None:
                pending.result()
            pending = writer.submit(files.save_tree, out / CHECKPOINT, snapshot, epoch=epoch + 1,
                                    metrics=_record(rows))
        # the whole epoch, metrics and checkpoint copies too, but not the compiling of a new epoch variant
        epoch_seconds.append(time.perf_counter() - tick - (epoch_fn.compile_seconds - compiled))
        headline = plots.curve_metric([metrics])  # catch rate on Catch, return elsewhere
        rate = cfg.seeds * cfg.epoch_steps / epoch_seconds[-1]
        tracker.epoch(metrics, (epoch + 1) * cfg.epoch_steps, rate)
        bar.set_postfix({"steps/s": f"{rate:.0f}", headline: f"{metrics[headline].mean():.3f}"})
        bar.update()
    bar.close()
    tracker.close()
    if pending is not None:
        pending.result()
    writer.shutdown()

    summary = run_summary(cfg, meta, trainer, epoch_fn.compile_seconds, epoch_seconds, start, needs, rows)
    params = seeds.fetch(state.agent.params, cfg.seeds)
    if writes:
        files.write_csv(out / METRICS, rows)  # a run resumed after its last epoch has not written it yet
        files.save_tree(out / PARAMS, params)
        label = {"dqn": "Double DQN" if cfg.double else "DQN", "dqv": "DQV", "dqv_max": "DQV-Max",
                 "a2c": "A2C"}[cfg.agent]
        metric = plots.curve_metric(rows)
        plots.learning_curve(out / CURVE, {label: plots.seed_matrix(rows, metric)}, cfg.env, metric)
        files.write_json(out / RUN_JSON, summary)  # the finished mark: the checkpoint is no longer needed
        if not cfg.keep_checkpoint:
            (out / CHECKPOINT).unlink(missing_ok=True)
    seeds.barrier()  # no process reads the results before they are there
    return summary



def resume(out: Path, cfg: TrainConfig, trainer, state):
    """(state, first epoch, metric rows so far): from ``out``'s checkpoint where there is one. The rows
    are the checkpoint's own copy, so a metrics.csv cut short or deleted since is written again whole."""
    if not (out / CHECKPOINT).exists():
        return state, 0, []
    try:
        saved, extras = files.load_tree(out / CHECKPOINT, like=seeds.shapes(trainer.checkpoint(state), cfg.seeds))
    except (KeyError, ValueError) as e:  # a damaged file, or one of another layout
        raise ConfigError(str(e) if isinstance(e, files.DamagedFile) else
                          f"{out / CHECKPOINT} does not fit this run ({e}); delete it to start over") from None
    start = int(extras["epoch"])
    rows = json.loads(extras["metrics"].tobytes()) if "metrics" in extras else _csv_rows(out, start, cfg.seeds)
    return trainer.restore(state, saved), start, rows


def _record(rows: list[dict]) -> np.ndarray:
    """metrics.csv's rows as JSON bytes, kept in the checkpoint should metrics.csv be cut short or lost."""
    return np.frombuffer(json.dumps(rows).encode(), np.uint8)


def _csv_rows(out: Path, start: int, num_seeds: int) -> list[dict]:
    """The rows before epoch ``start`` from metrics.csv, for a checkpoint of an older jaxfer (without a copy of
    them); a file that lacks some is refused rather than cut further."""
    hint = f"restore it from a copy, or delete {out / CHECKPOINT} to train the run again from the start"
    if not (out / METRICS).is_file():
        raise ConfigError(f"{out / METRICS} is missing and {out / CHECKPOINT} holds no copy of its rows; {hint}")
    rows = [r for r in files.read_csv(out / METRICS, ("epoch", "seed")) if int(r["epoch"]) < start]
    if len(rows) != start * num_seeds:
        raise files.damaged(out / METRICS, f"{len(rows)} of the {start * num_seeds} rows before epoch {start}", hint)
    return rows


def run_summary(cfg: TrainConfig, meta, trainer, compile_seconds: float, epoch_seconds: list, start: int,
                needs: dict, rows: list[dict]) -> dict:
    """run.json: the config, where and how it ran, its speed (compile apart) and final metrics."""
    steady = epoch_seconds[1:] or epoch_seconds
    return {
        "config": to_dict(cfg),
        **(meta or {}),
        **environment_info(),
        "code_path": trainer.path.record() | {"seeds_computed": trainer.num_seeds},
        "compile_seconds": round(compile_seconds, 3),
        "steady_env_steps_per_s": round(cfg.seeds * cfg.epoch_steps * len(steady) / sum(steady), 1) if steady else None,
        "epochs_timed": len(steady),
        "resumed_from_epoch": start,
        "env_options": trainer.pool.options,
        "memory_bytes": needs,
        "final": final_metrics(rows, cfg.num_epochs - 1),
    }


def init_params(cfg: TrainConfig):
    """The fresh parameters (seed axis first) that ``train(cfg, ...)`` would start from, without
    making the rest of a run (replay buffers, environments)."""
    env = envs.make(cfg.env, cfg.obs)
    agent = agents.make_agent(cfg, env)
    obs = jnp.zeros((cfg.num_envs, *env.obs_shape), env.obs_dtype)  # only its shape matters
    k_agent = jax.vmap(lambda k: jax.random.split(k, 4)[0])(seeds.seed_keys(cfg.seed, cfg.seeds))
    return jax.jit(lambda keys: jax.lax.map(lambda k: agent.init(k, obs, None).params, keys))(k_agent)


def final_metrics(rows: list[dict], epoch: int) -> dict:
    last = [r for r in rows if int(r["epoch"]) == epoch]
    keys = [k for k in last[0] if k not in ("epoch", "seed")]
    per_seed = {k: [float(r[k]) for r in last] for k in keys}
    return {"per_seed": per_seed, "mean": {k: float(np.mean(v)) for k, v in per_seed.items()}}


def io_summary(out: Path) -> dict:
    return files.read_json(out / RUN_JSON, ("final", "compile_seconds", "steady_env_steps_per_s")) | {
        "already_finished": True}
