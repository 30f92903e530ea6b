"""How the seed axis executes: one code path for 1 CPU, many devices, or many hosts.

``compile_over_seeds(fn, state, num_seeds, strategy)`` compiles a training epoch over states with
a leading seed axis (``jaxfer.agents.loop`` vmaps the agents inside):
- "vmap": all seeds in one call, the seed axis sharded over all devices (``jax.sharding``); what
  wins on accelerators and, with small networks, on this CPU too;
- "sequential": one compiled single-agent call per seed; the baseline the seed-scaling
  benchmark compares against, and a fallback where vmapped kernels lose;
- "auto": vmap, except on a CPU with more than ``CPU_VMAP_MAX_SEEDS`` seeds per device, where
  benchmarks/results/seed_scaling.json measured sequential runs faster (64 seeds: 0.90x, 256: 0.70x).
Seed i always starts from ``PRNGKey(seed + i)``, so seed i of any batch is reproducible alone.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxfer import memory


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    return jax.vmap(jax.random.PRNGKey)(jnp.arange(seed, seed + num_seeds))


def seed_sharding(num_seeds: int) -> NamedSharding:
    """Shard the leading axis over as many devices as divide the seed count."""
    devices = jax.devices()
    n = math.gcd(num_seeds, len(devices))
    return NamedSharding(Mesh(np.array(devices[:n]), ("seeds",)), PartitionSpec("seeds"))


def place(tree, num_seeds: int):
    """Own copies of every leaf (eager code may share one buffer between leaves, which donation
    rejects), with the seed axis sharded over the devices."""
    sharding = seed_sharding(num_seeds)
    return jax.tree.map(lambda x: jax.device_put(jnp.array(x, copy=True), sharding), tree)


CPU_VMAP_MAX_SEEDS = 16


def resolve(strategy: str, num_seeds: int) -> str:
    if strategy != "auto":
        return strategy
    per_device = num_seeds / jax.device_count()
    return "sequential" if jax.default_backend() == "cpu" and per_device > CPU_VMAP_MAX_SEEDS else "vmap"


def compile_over_seeds(fn: Callable, state, num_seeds: int, strategy: str, sliceable: bool = True
                       ) -> tuple[Callable, float]:
    """Returns (compiled function over the seed axis, compile seconds).

    ``fn`` maps a state with a leading seed axis to ``(state, out)`` (its own vmaps inside). "vmap"
    runs all seeds in one call and donates its input (replay buffers updated in place rather than
    copied per call: 3.6k vs 3.0k env steps/s at 64 seeds): pass a state from ``place`` and use the
    returned state. "sequential" runs one-seed slices; a state that cannot be sliced (an envpool
    pool of all seeds, ``sliceable=False``) always runs as one call.
    """
    strategy = resolve(strategy, num_seeds) if sliceable else "vmap"
    start = time.perf_counter()
    if strategy == "vmap":
        compiled = jax.jit(fn, donate_argnums=0).lower(state).compile()
        memory.check_working(compiled)
        return compiled, time.perf_counter() - start
    if strategy != "sequential":
        raise ValueError(f"unknown strategy '{strategy}'")
    one = jax.jit(fn).lower(jax.tree.map(lambda x: x[:1], state)).compile()
    memory.check_working(one)

    def sequential(states):
        outs = [one(jax.tree.map(lambda x: x[i : i + 1], states)) for i in range(num_seeds)]
        return jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs)

    return sequential, time.perf_counter() - start


def fetch(tree):
    """Bring (possibly sharded, possibly multi-host) arrays to this host as numpy."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        tree = multihost_utils.process_allgather(tree)
    return jax.tree.map(np.asarray, tree)


def unbatched_single_seed(fn: Callable) -> Callable:
    """``fn`` that, vmapped over a seed axis of size 1, runs on that one seed's arrays unbatched.

    A vmap of size 1 still makes every op batched: XLA CPU adds transposes around the update's
    batched GEMMs, fuses Adam worse, and a ``cond`` on a batched predicate becomes a select that runs
    both branches. For the DQN update (DQN loop on Pong at one seed, 5 alternated pairs of runs):
    -2% to +19%, +8% on average. Only ``fn``'s arguments are sliced, so the carried replay buffer
    stays one batched array updated in place (squeezing the whole state made XLA copy it). Larger
    seed axes are vmapped as usual.
    """
    wrapped = jax.custom_batching.custom_vmap(fn)

    @wrapped.def_vmap
    def rule(axis_size, in_batched, *args):
        if axis_size == 1:
            one = [jax.tree.map(lambda x, b: x[0] if b else x, a, b) for a, b in zip(args, in_batched)]
            out = jax.tree.map(lambda x: x[None], fn(*one))
        else:
            axes = [jax.tree.map(lambda b: 0 if b else None, b) for b in in_batched]
            out = jax.vmap(fn, in_axes=axes)(*args)
        return out, jax.tree.map(lambda _: True, out)

    return wrapped
