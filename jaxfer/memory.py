"""What a run will hold in memory: its state, known before anything is allocated (``jax.eval_shape``),
and the working memory of one compiled epoch (XLA's own count), checked before the first epoch runs."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxfer.config import ConfigError


def tree_bytes(tree) -> int:
    """Bytes of every array (or shape-dtype struct) in a tree."""
    return sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def estimate(agent, env, num_envs: int, num_seeds: int) -> dict:
    """Bytes of one seed's agent state by part (replay, params, target_params, opt_state, ...) and
    of all seeds: the arrays that dominate a run; the loop's env and eval states are small."""
    obs = jax.ShapeDtypeStruct((num_envs, *env.obs_shape), env.obs_dtype)
    state = jax.eval_shape(lambda k, o: agent.init(k, o, None), jax.random.PRNGKey(0), obs)
    per_seed = {name: tree_bytes(part) for name, part in state._asdict().items()}
    total = sum(per_seed.values()) * num_seeds
    return {"per_seed": per_seed, "per_seed_total": sum(per_seed.values()), "seeds": num_seeds, "total": total}


def available() -> int:
    """Bytes this run may still allocate: the accelerator's free memory, or the host's MemAvailable."""
    dev = jax.devices()[0]
    stats = dev.memory_stats() if dev.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) * 1024


def describe(est: dict) -> str:
    gib = lambda b: f"{b / 2**30:.2f} GiB"  # noqa: E731
    parts = ", ".join(f"{k} {gib(v)}" for k, v in est["per_seed"].items() if v >= 2**20)
    return f"memory: {gib(est['per_seed_total'])} per seed ({parts}) x {est['seeds']} seeds = {gib(est['total'])}"


def check(est: dict, free: int | None = None) -> None:
    free = available() if free is None else free
    if est["total"] > free:
        raise ConfigError(f"the run needs {est['total'] / 2**30:.2f} GiB ({describe(est)}) but only "
                          f"{free / 2**30:.2f} GiB is available; lower buffer_size or seeds")


def check_working(compiled, free: int | None = None) -> None:
    """Refuse a compiled call whose temporary buffers (activations, im2col patches, gradients: what
    ``estimate`` cannot see) exceed the memory still free; the run's state is already allocated."""
    analysis = compiled.memory_analysis()
    need = getattr(analysis, "temp_size_in_bytes", 0)
    free = available() if free is None else free
    if need > free:
        raise ConfigError(f"one epoch needs {need / 2**30:.2f} GiB of working memory (XLA's count: activations, "
                          f"gradients) but only {free / 2**30:.2f} GiB is available; lower num_envs, n_steps, "
                          f"batch_size or seeds")
