"""What a run will hold in memory: its state, known before anything is allocated (``jax.eval_shape``),
and the working memory of one compiled epoch (XLA's own count), checked before the first epoch runs."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxfer import mesh
from jaxfer.errors import ConfigError


def tree_bytes(tree) -> int:
    """Bytes of every array (or shape-dtype struct) in a tree."""
    return sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def estimate(agent, env, num_envs: int, num_seeds: int, eval_envs: int = 0) -> dict:
    """Bytes of one seed's agent state by part (replay, params, target_params, opt_state, ...) and of the
    observations the loop holds (its ``num_envs`` and ``eval_envs`` envs' latest), of each device's share
    (the seeds padded to a multiple of the device count, split evenly) and of all seeds: the arrays that
    dominate a run, known before anything is compiled."""
    obs = jax.ShapeDtypeStruct((num_envs, *env.obs_shape), env.obs_dtype)
    state = jax.eval_shape(lambda k, o: agent.init(k, o, None), jax.random.PRNGKey(0), obs)
    per_seed = {name: tree_bytes(part) for name, part in state._asdict().items()}
    per_seed["observations"] = tree_bytes(jax.ShapeDtypeStruct((num_envs + eval_envs, *env.obs_shape), env.obs_dtype))
    devices = mesh.device_count()
    per_device_seeds = -(-num_seeds // devices)
    one = sum(per_seed.values())
    return {"per_seed": per_seed, "per_seed_total": one, "seeds": num_seeds, "devices": devices,
            "seeds_per_device": per_device_seeds, "per_device": one * per_device_seeds, "total": one * num_seeds}


def _host_available() -> int:
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) * 1024


def available() -> tuple[int | None, int]:
    """(bytes a device of this process may still allocate, how many such devices share them): for CPU
    devices, the host's MemAvailable once, shared by all of them; for accelerators, the least free memory
    among this process's devices, each its own, from the device's own stats (``bytes_limit`` less
    ``bytes_in_use``). None where an accelerator reports no limit: the host's memory says nothing about it."""
    local = [mesh.mesh().devices[i] for i in mesh.local_positions()]
    if local[0].platform == "cpu":
        return _host_available(), len(local)
    free = []
    for dev in local:
        stats = dev.memory_stats() or {}
        if "bytes_limit" in stats:
            free.append(int(stats["bytes_limit"] - stats.get("bytes_in_use", 0)))
    return (min(free) if free else None), 1


def describe(est: dict) -> str:
    gib = lambda b: f"{b / 2**30:.2f} GiB"  # noqa: E731
    parts = ", ".join(f"{k} {gib(v)}" for k, v in est["per_seed"].items() if v >= 2**20)
    return (f"memory: {gib(est['per_seed_total'])} per seed ({parts}) x {est['seeds_per_device']} seeds per device "
            f"x {est['devices']} devices = {gib(est['total'])}")


def require(per_device: int, what: str, hint: str, free: tuple[int, int] | None = None,
            error: type[Exception] = ConfigError) -> None:
    """Refuse, in one line, ``what`` that needs ``per_device`` bytes on each device (CPU devices share
    the host's memory: all of them are counted against it once) when that is more than is free; ``hint``
    says what to lower."""
    free_bytes, sharing = available() if free is None else free
    need = per_device * sharing
    if free_bytes is None:  # an accelerator that reports no limit: XLA's own out-of-memory error remains
        return
    if need > free_bytes:
        where = "" if sharing == 1 else f" for this host's {sharing} devices"
        raise error(f"{what} needs {need / 2**30:.2f} GiB{where} but only {free_bytes / 2**30:.2f} GiB is "
                    f"available; lower {hint}")


def check(est: dict, free: tuple[int, int] | None = None) -> None:
    """Refuse a run whose per-device share of the state exceeds what each device has free."""
    require(est["per_device"], "the run", f"buffer_size, num_envs, eval_envs or seeds ({describe(est)})", free)


def check_working(compiled, free: tuple[int, int] | None = None) -> None:
    """Refuse a compiled call whose temporary buffers on each device (activations, im2col patches,
    gradients: what ``estimate`` cannot see) exceed the memory still free; the state is already allocated."""
    per_device = getattr(compiled.memory_analysis(), "temp_size_in_bytes", 0)
    require(per_device, "one epoch's working memory (XLA's count: activations, gradients)",
            "num_envs, n_steps, batch_size or seeds", free)
