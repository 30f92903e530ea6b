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


def resolve(strategy: str, num_seeds: int, path: CodePath) -> str:
    return path.strategy(strategy, num_seeds / mesh.device_count())


class EpochFn:
    """A compiled epoch over all seeds: ``state -> (state, per-seed outputs)``, input donated.

    ``phase(state)`` (optional) picks a static variant of the epoch before each call (the value-based
    warm-up before ``learning_starts`` on accelerators); each variant compiles once, on first use, and
    ``compile_seconds`` sums them all.
    """

    def __init__(self, build: Callable[[Any], Any], phase: Callable | None):
        self._build, self._phase, self._compiled, self.compile_seconds = build, phase, {}, 0.0

    def compiled(self, variant=None):
        if variant not in self._compiled:
            start = time.perf_counter()
            self._compiled[variant] = executable = self._build(variant)
            budget.check_working(executable)
            self.compile_seconds += time.perf_counter() - start
        return self._compiled[variant]

    def __call__(self, state):
        return self.compiled(None if self._phase is None else self._phase(state))(state)


def compile_over_seeds(fn: Callable, state, strategy: str = "vmap", sliceable: bool = True,
                       phase: Callable | None = None, path: CodePath = PLAIN) -> tuple[EpochFn, float]:
    """Returns (the epoch compiled over the seed mesh, compile seconds of its first variant).

    ``fn(state)`` (or ``fn(state, variant)`` with ``phase``) maps one device's block of seeds to
    ``(state, out)``, every leaf of ``out`` per seed; ``state`` is laid out as the module docstring
    says (from ``Trainer.init``). A state that cannot be sliced per seed (an emulator pool of all of a
    device's seeds, ``sliceable=False``) always runs "vmap". ``path``, the run's code path
    (``Trainer.path``), says what "auto" means.
    """
    num_seeds = jax.tree.leaves(state)[0].shape[0]
    strategy = resolve(strategy, num_seeds, path) if sliceable else "vmap"
    if strategy not in ("vmap", "sequential"):
        raise ValueError(f"unknown strategy '{strategy}'")
    local = fn if strategy == "vmap" else mesh.one_at_a_time(fn)
    specs = jax.tree.map(mesh.spec, state)

    def build(variant):
        body = local if phase is None else (lambda s: local(s, variant))
        epoch = jax.jit(mesh.over_seeds(body, (specs,), (specs, mesh.SEED_AXIS)), donate_argnums=0)
        return epoch.lower(state).compile()

    epoch = EpochFn(build, phase)
    epoch.compiled(None if phase is None else phase(state))
    return epoch, epoch.compile_seconds

