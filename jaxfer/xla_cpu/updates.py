"""XLA-CPU wrappers of an agent's update: the learning-start gate and the unbatched single seed.

On an accelerator the epoch is split at ``learning_starts`` into a collecting and an always-learning
scan (no conditional per step). On XLA CPU one scan with a ``lax.cond`` on the step count ran faster
(benchmarks/results/seed_scaling.json), and at one seed the update runs on that seed's arrays unbatched.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def unbatched_single_seed(fn: Callable) -> Callable:
    """``fn`` that, vmapped over a seed axis of size 1, runs on that one seed's arrays unbatched.

    A vmap of size 1 still makes every op batched: XLA CPU adds transposes around the update's
    batched GEMMs, fuses Adam worse, and a ``cond`` on a batched predicate becomes a select that runs
    both branches. Only ``fn``'s arguments are sliced, so the carried replay buffer stays one batched
    array updated in place (squeezing the whole state made XLA copy it). Larger seed axes are vmapped
    as usual.
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


def learning_gate(step: Callable, learning_starts: int) -> Callable:
    """``step(state, *rest) -> (state, stats)`` as ``(env_steps, state, *rest)`` that steps only where
    ``env_steps >= learning_starts`` and otherwise returns ``state`` and zero stats: a ``lax.cond`` on the
    step count all seeds share (a real branch under vmap), unbatched at one seed. Give it only small
    operands (parameters, optimiser state, a sampled batch): a replay buffer in a cond is copied every step."""

    def skip(state, *rest):
        stats = jax.eval_shape(step, state, *rest)[1]
        return state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), stats)

    @unbatched_single_seed
    def gated(learn, state, *rest):
        return jax.lax.cond(learn, step, skip, state, *rest)

    return lambda env_steps, state, *rest: gated(env_steps >= learning_starts, state, *rest)
