"""How an epoch runs over the seed axis: compiled once over the seed mesh (``jaxfer.mesh``), with
every seed of a device either batched or one after another.

Within a device, the strategy:
- "vmap": the device's seeds as one batched program: what wins on accelerators and, with small
  networks, on this CPU too;
- "sequential": one seed after another (``mesh.one_at_a_time``, inside the same compiled epoch): the
  baseline the seed-scaling benchmark compares against, and a fallback where vmapped kernels lose;
- "auto": what the run's code path picks (``jaxfer.code_path.CodePath.strategy``).
"""
from __future__ import annotations

import time
from typing import Any, Callable

import jax

from jaxfer import mesh
from jaxfer.code_path import PLAIN, CodePath
from jaxfer.runtime import budget


def resolve(strategy: str, num_seeds: int, path: CodePath, convs: bool = True) -> str:
    return path.strategy(strategy, num_seeds / mesh.device_count(), convs)


def has_convs(params) -> bool:
    """Whether a seed-batched parameter tree holds conv kernels: (seeds, k, k, in, out)."""
    return any(x.ndim == 5 for x in jax.tree.leaves(params))


class EpochFn:
    """A compiled epoch over all seeds: ``state -> (state, per-seed outputs)``, input donated.

    ``variant_of(state)`` (optional) picks a static variant of the epoch before each call (the value-based
    warm-up before ``learning_starts`` on accelerators); each variant compiles once, on first use, and
    ``compile_seconds`` sums them all.
    """

    def __init__(self, build: Callable[[Any], Any], variant_of: Callable | None, strategy: str):
        self._build, self._variant_of, self._compiled, self.compile_seconds = build, variant_of, {}, 0.0
        self.strategy = strategy  # the one it runs ("auto" resolved)

    def compiled(self, variant=None):
        if variant not in self._compiled:
            start = time.perf_counter()
            self._compiled[variant] = executable = self._build(variant)
            budget.check_working(executable)
            self.compile_seconds += time.perf_counter() - start
        return self._compiled[variant]

    def __call__(self, state):
        return self.compiled(None if self._variant_of is None else self._variant_of(state))(state)


def compile_over_seeds(fn: Callable, state, strategy: str = "vmap", sliceable: bool = True,
                       variant_of: Callable | None = None, path: CodePath = PLAIN,
                       convs: bool = True) -> tuple[EpochFn, float]:
    """Returns (the epoch compiled over the seed mesh, compile seconds of its first variant).

    ``fn(state)`` (or ``fn(state, variant)`` with ``variant_of``) maps one device's block of seeds to
    ``(state, out)``, every leaf of ``out`` per seed; ``state`` is laid out as the module docstring
    says (from ``Trainer.init``). A state that cannot be sliced per seed (an emulator pool of all of a
    device's seeds, ``sliceable=False``) always runs "vmap". ``path``, the run's code path
    (``Trainer.path``), and ``convs`` (the network has convolutions) say what "auto" means.
    """
    num_seeds = jax.tree.leaves(state)[0].shape[0]
    strategy = resolve(strategy, num_seeds, path, convs) if sliceable else "vmap"
    if strategy not in ("vmap", "sequential"):
        raise ValueError(f"unknown strategy '{strategy}'")
    local = fn if strategy == "vmap" else mesh.one_at_a_time(fn)

    def build(variant):
        body = local if variant_of is None else (lambda s: local(s, variant))
        return compile_seed_map(body, state, out_specs=(jax.tree.map(mesh.spec, state), mesh.SEED_AXIS), donate=True,
                                compiler_options=path.compiler_options(convs))

    epoch = EpochFn(build, variant_of, strategy)
    epoch.compiled(None if variant_of is None else variant_of(state))
    return epoch, epoch.compile_seconds


def compile_seed_map(fn: Callable, per_seed, *shared, out_specs=None, donate: bool = False,
                     compiler_options: dict | None = None):
    """``fn(one device's block of per_seed, *shared)`` compiled over the seed mesh: ``per_seed`` laid out as a
    run's state (``mesh.place(mesh.pad(...))``: seed axis first, 0-d leaves replicated), ``shared`` whole on
    every device (``mesh.replicate``), outputs laid out the same way unless ``out_specs`` says otherwise.
    ``donate``: ``per_seed``'s buffers; ``compiler_options``: XLA's (``CodePath.compiler_options``). The one
    way a computation over seeds is compiled here."""
    in_specs = (jax.tree.map(mesh.spec, per_seed), *(mesh.REPLICATED,) * len(shared))
    if out_specs is None:
        out_specs = jax.tree.map(mesh.spec, jax.eval_shape(fn, per_seed, *shared))
    body = mesh.over_seeds(fn, in_specs, out_specs)
    lowered = jax.jit(body, donate_argnums=0 if donate else ()).lower(per_seed, *shared)
    return lowered.compile(compiler_options)


def compile_trainer(trainer, state, strategy: str = "auto") -> tuple[EpochFn, float]:
    """``compile_over_seeds`` of a ``Trainer``'s epoch, with the trainer's own pool, warm-up split and code path."""
    return compile_over_seeds(trainer.epoch, state, strategy, sliceable=trainer.pool.checkpointable,
                              variant_of=trainer.warmup_iterations, path=trainer.path,
                              convs=has_convs(state.agent.params))
