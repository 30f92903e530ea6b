"""The code path of a run: XLA-CPU workarounds or plain XLA, chosen once and passed to what it changes.

jaxfer is tuned on XLA CPU, whose convolutions, conditionals and fusions behave unlike a GPU's or a
TPU's. A ``CodePath`` is built once per run from the config's ``tuning`` and ``conv_impl`` and the
backend (``CodePath.of``), and every switch between the two paths is one of its methods: the
networks' convolutions, ReLU and max-pool, the seed strategy, the batch chunks of DPTL and Grad-CAM,
the learning-start gate, the unbatched single-seed update and the target sync of the value-based
agents, the static warm-up split of the epoch, XLA's options for the compiled epoch. The XLA-CPU side of
each lives in ``jaxfer.xla_cpu``; the other side is flax's own layer or no wrapper at all. ``PLAIN`` (plain
XLA, flax's convolutions) is the default of every network built directly.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxfer import backend
from jaxfer.xla_cpu import kernels, updates

# "auto" runs vmap, except on the XLA-CPU path for a network with convolutions above this many seeds per
# device: vmapped, its convs become batched kernels that lost to one seed after another at 64 seeds
# (benchmarks/results/seed_scaling.json, catch_cnn; its 256-seed sequential reading is one of the slow mode
# README's "Seed scaling" describes). Dense-only networks vmap at any count: their layers become batched
# GEMMs, ahead of one seed after another at 64 seeds (benchmarks/results/seed_scaling_mlp.json).
CPU_VMAP_MAX_SEEDS = 16
# XLA CPU hands dots (and some reductions) to YNNPACK by default. For dense-only networks XLA's own kernels ran
# the epoch faster at every seed count measured, for conv networks (im2col GEMMs) not always
# (benchmarks/results/xla_cpu_options.json): the XLA-CPU path turns YNNPACK off for dense-only networks.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


class Conv(nn.Conv):
    """``nn.Conv`` of ``x * input_scale``: takes raw integer frames as ``jaxfer.xla_cpu.kernels.GemmConv`` does,
    with the same parameters."""

    input_scale: float = 1.0

    def __call__(self, inputs: jax.Array) -> jax.Array:
        if self.input_scale != 1.0:
            inputs = inputs.astype(jnp.float32) * self.input_scale
        return super().__call__(inputs)


@dataclasses.dataclass(frozen=True)
class CodePath:
    """``cpu``: the XLA-CPU workarounds (fused-form ReLU after convs, reshape max-pool, learning-start gate,
    unbatched single seed, conv networks' seeds one after another past ``CPU_VMAP_MAX_SEEDS``, small
    chunks, XLA's own GEMMs for dense-only networks); ``conv_impl``: "gemm" (im2col GEMMs,
    ``kernels.GemmConv``) or "xla" (the backend's conv op, flax's layers)."""

    cpu: bool = False
    conv_impl: str = "xla"

    @classmethod
    def of(cls, tuning: str = "auto", conv_impl: str = "auto") -> "CodePath":
        """``tuning`` "cpu", "accelerator" or "auto" (the CPU backend: "cpu"); ``conv_impl`` "auto" follows it."""
        cpu = backend.cpu_tuned(tuning)
        return cls(cpu, conv_impl if conv_impl != "auto" else ("gemm" if cpu else "xla"))

    @classmethod
    def from_config(cls, cfg) -> "CodePath":
        return cls.of(cfg.tuning, cfg.conv_impl)

    def record(self) -> dict:
        """What run.json keeps of it."""
        return {"cpu_tuned": self.cpu, "conv_impl": self.conv_impl}

    def describe(self) -> str:
        return f"{'XLA-CPU' if self.cpu else 'accelerator'}, conv_impl {self.conv_impl}"

    # networks
    def conv(self, features: int, kernel: int, stride: int, padding: str | int = "VALID", input_scale: float = 1.0,
             **name) -> nn.Module:
        """A k x k conv of ``x * input_scale`` ("VALID", "SAME" or an int of zeros on each side); the same
        parameters either way."""
        if self.conv_impl == "gemm":
            return kernels.GemmConv(features, kernel, stride, padding, input_scale, **name)
        return Conv(features, (kernel, kernel), (stride, stride), padding=padding if isinstance(padding, str)
                    else ((padding, padding), (padding, padding)), input_scale=input_scale, **name)

    def conv_transpose(self, features: int, kernel: int, stride: int, **name) -> nn.Module:
        """A "VALID" transposed conv, kernel a multiple of the stride."""
        if self.conv_impl == "gemm":
            return kernels.GemmConvTranspose(features, kernel, stride, **name)
        return nn.ConvTranspose(features, (kernel, kernel), (stride, stride), padding="VALID", **name)

    @property
    def relu(self) -> Callable:
        """A conv's ReLU (dense layers take ``nn.relu``: the fused form is for a conv before it)."""
        return kernels.relu if self.cpu else nn.relu

    def max_pool(self, x, size: int):
        """Non-overlapping ``size x size`` max-pool, "VALID"."""
        return kernels.max_pool(x, size) if self.cpu else nn.max_pool(x, (size, size), (size, size))

    # seeds and batches
    def strategy(self, strategy: str, seeds_per_device: float, convs: bool = True) -> str:
        """The seed strategy "auto" stands for; ``convs``: the trained network has convolutions."""
        if strategy != "auto":
            return strategy
        return "sequential" if self.cpu and convs and seeds_per_device > CPU_VMAP_MAX_SEEDS else "vmap"

    def map_batch_size(self, cpu: int, accelerator: int = 1024) -> int:
        """Batch chunk for ``lax.map``: XLA CPU runs small GEMM batches faster per item; accelerators want big ones."""
        return cpu if self.cpu else accelerator

    # the value-based update
    def learning_gate(self, step: Callable, learning_starts: int) -> Callable:
        """``(env_steps, state, *rest) -> step(state, *rest)``. The XLA-CPU path adds the learning-start gate
        (``jaxfer.xla_cpu.updates``); elsewhere the epoch is split before ``learning_starts`` (``warmup``)."""
        if self.cpu:
            return updates.learning_gate(step, learning_starts)
        return lambda env_steps, *args: step(*args)

    def either(self, pred: jax.Array, on_true, on_false):
        """``on_true`` where ``pred`` (one unbatched boolean) else ``on_false``, whole trees: a branch on the XLA-CPU
        path, which then reads only the tree it keeps; a select elsewhere, where a conditional would wait on the
        host for its predicate."""
        if self.cpu:
            return jax.lax.cond(pred, lambda: on_true, lambda: on_false)
        return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)

    def compiler_options(self, convs: bool) -> dict:
        """XLA options of a compiled epoch; ``convs``: the trained network has convolutions."""
        return dict(CPU_COMPILER_OPTIONS) if self.cpu and not convs else {}

    def warmup_split(self, warmup_iterations: Callable) -> Callable | None:
        """The epoch's static warm-up split (``warmup_iterations``), or None where the learning-start gate
        decides in the graph."""
        return None if self.cpu else warmup_iterations


PLAIN = CodePath()
