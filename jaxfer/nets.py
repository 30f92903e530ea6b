"""Q-networks whose weighted layers carry ordered names, so transfer is list slicing.

Every network names its weighted layers ``conv_i``, ``dense_i`` and ``head`` (in forward order);
``layer_names(params)`` recovers that order from any parameter tree, including one that went
through ``jax.tree`` operations (which sort dict keys alphabetically).
"""
from __future__ import annotations

import functools
import math
import re
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxfer import backend

_KIND_ORDER = ("conv", "dense", "head")


def layer_names(params) -> list[str]:
    """Weighted layers of a network's parameter tree, in forward order."""
    tree = params.get("params", params)

    def key(name: str):
        m = re.fullmatch(r"([a-z]+)(?:_(\d+))?", name)
        if m is None or m.group(1) not in _KIND_ORDER:
            raise ValueError(f"layer '{name}' does not follow the kind_index naming")
        return _KIND_ORDER.index(m.group(1)), int(m.group(2) or 0)

    return sorted(tree, key=key)


FRAME_SCALE = 1 / 255  # raw frames in [0, 255] -> [0, 1]


def same_padding(x: jax.Array, kernel: int, stride: int) -> jax.Array:
    """Zero-pad H and W as XLA's "SAME" does (output size = ceil(input / stride))."""
    pads = []
    for size in x.shape[-3:-1]:
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads.append((total // 2, total - total // 2))
    return jnp.pad(x, [(0, 0)] * (x.ndim - 3) + pads + [(0, 0)])


def _patches(x: jax.Array, k: int, s: int) -> jax.Array:
    """im2col of a "VALID" k x k, stride-s conv: (..., H, W, C) -> (..., Ho, Wo, k * k * C) by shifted slices."""
    ho = (x.shape[-3] - k) // s + 1
    wo = (x.shape[-2] - k) // s + 1
    return jnp.concatenate(
        [x[..., i : i + s * (ho - 1) + 1 : s, j : j + s * (wo - 1) + 1 : s, :] for i in range(k) for j in range(k)],
        axis=-1,
    )


def _space_to_depth(x: jax.Array, k: int, s: int) -> jax.Array:
    """s x s blocks of x become channels: a k x k, stride-s conv of x (s divides k) is a (k/s) x (k/s)
    stride-1 conv of the result, (..., H, W, C) -> (..., Ho - 1 + k/s, Wo - 1 + k/s, s * s * C)."""
    n, cin = k // s, x.shape[-1]
    ho, wo = (x.shape[-3] - k) // s + 1, (x.shape[-2] - k) // s + 1
    hb, wb = ho - 1 + n, wo - 1 + n
    x = x[..., : s * hb, : s * wb, :].reshape(x.shape[:-3] + (hb, s, wb, s, cin))
    return jnp.swapaxes(x, -4, -3).reshape(x.shape[:-5] + (hb, wb, s * s * cin))


def _space_to_depth_kernel(kernel: jax.Array, s: int) -> jax.Array:
    """(k, k, cin, cout) -> the matrix that multiplies the patches of ``_space_to_depth``'s output."""
    k, (cin, cout) = kernel.shape[0], kernel.shape[-2:]
    n = k // s
    return kernel.reshape(n, s, n, s, cin, cout).transpose(0, 2, 1, 3, 4, 5).reshape(-1, cout)


# XLA CPU folds a transpose into the dot that consumes it. For a conv's gradients that makes the
# kernel gradient one dot contracting the long (batch x positions) axis of the patches, and the input
# gradient one against a transposed kernel: 1.8-2.3x and up to 1.5x slower than with the transposes
# materialised (Nature CNN layers at batch 32, alone). An optimization barrier keeps each transpose:
# the DQN update (interleaved runs) 5-11% faster at 2 and 4 vmapped seeds, within noise at one. Below
# this many patch elements the copies cost more than they save (Catch's CNN at 4 seeds: 12% slower),
# so small convs keep the folded form.
_BARRIER_MIN_PATCHES = 1 << 18


def _own_buffer(fn: Callable, x: jax.Array) -> jax.Array:
    """``fn(x)`` written to a buffer of its own. XLA CPU fuses a layout change into every consumer,
    redoing its index arithmetic per element of each (an optimization barrier does not stop that);
    a conditional's result is always materialised. Both branches are ``fn``; the predicate is hidden
    from the compiler only so that it keeps the conditional."""
    return jax.lax.cond(jax.lax.optimization_barrier(jnp.array(True)), fn, fn, x)


@functools.cache
def _conv(stride: int, scale: float = 1.0) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``(x, kernel) -> "VALID" conv of x * scale``: XLA's conv op where no gradient is taken, im2col
    GEMMs where one is. x may hold raw integer frames (the first layer): the patches are taken from them
    and converted once, and the scale goes into the kernel matrix.

    Measured on XLA CPU (2 cores, Nature CNN and seg_ddqn layers at batch 32): the conv op's forward is
    up to 4x faster than im2col + GEMM, but its gradients run 10-100x slower inside ``lax.scan`` and,
    vmapped over seeds (a batched kernel), it becomes a grouped conv 3x slower than batched GEMMs.
    So target networks, acting and frozen layers run the conv op (once per seed when the kernel is
    batched), and a differentiated conv runs im2col + GEMM, whose patches also give the kernel's
    gradient. Where the stride divides the kernel the patches are (k/s)^2 slices of the space-to-depth
    input in a buffer of its own instead of k^2 strided slices: the Nature CNN's 8x8/4 conv on uint8
    frames builds its patches and GEMM in 2.6 ms against 4.2-6.4 (batch 32, alone).
    """

    def forward(x, kernel):
        lead = x.shape[:-3]
        x = x.reshape((-1, *x.shape[-3:])).astype(jnp.float32)
        y = jax.lax.conv_general_dilated(x * scale, kernel, (stride, stride), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y.reshape(lead + y.shape[1:])

    @jax.custom_vjp
    @jax.custom_batching.custom_vmap
    def conv(x, kernel):
        return forward(x, kernel)

    @conv.def_vmap
    def conv_vmap(axis_size, in_batched, x, kernel):
        x_batched, kernel_batched = in_batched
        if not kernel_batched:  # the vmapped axis is one more leading axis of x
            return conv(x if x_batched else jnp.broadcast_to(x, (axis_size, *x.shape)), kernel), True
        return jnp.stack([conv(x[i] if x_batched else x, kernel[i]) for i in range(axis_size)]), True

    def layout(x_shape, k):
        """(x -> patches, kernel -> the matrix multiplying them, the barrier that keeps a transpose
        apart, the identity for small convs) for an x of this shape."""
        big = math.prod(x_shape) * k * k // (stride * stride) >= _BARRIER_MIN_PATCHES
        keep = jax.lax.optimization_barrier if big else (lambda a: a)
        if stride > 1 and k % stride == 0:
            blocks = functools.partial(_space_to_depth, k=k, s=stride)
            return (lambda x: _patches(_own_buffer(blocks, x) if big else blocks(x), k // stride, 1),
                    lambda kernel: _space_to_depth_kernel(kernel, stride), keep)
        return lambda x: _patches(x, k, stride), lambda kernel: kernel.reshape(-1, kernel.shape[-1]), keep

    def conv_fwd(x, kernel):
        to_patches, to_matrix, _ = layout(x.shape, kernel.shape[0])
        patches = to_patches(x).astype(jnp.float32)
        return patches @ (to_matrix(kernel) * scale), (x, patches, kernel)

    def conv_bwd(residuals, g):
        x, patches, kernel = residuals
        to_patches, to_matrix, keep = layout(x.shape, kernel.shape[0])
        kmat, matrix_vjp = jax.vjp(to_matrix, kernel)
        rows_g, rows_patches = g.reshape(-1, g.shape[-1]), patches.reshape(-1, patches.shape[-1])
        grad_kernel = matrix_vjp(keep(keep(rows_g.T) @ rows_patches).T * scale)[0]
        if not jnp.issubdtype(x.dtype, jnp.floating):  # raw integer frames take no gradient
            return None, grad_kernel
        return jax.vjp(to_patches, x)[1](g @ keep((kmat * scale).T))[0], grad_kernel

    conv.defvjp(conv_fwd, conv_bwd)
    return conv


class GemmConv(nn.Module):
    """A strided 2-D convolution ("VALID" or "SAME") whose gradients are matrix products.

    Same parameters (``kernel`` (kh, kw, cin, cout), ``bias``) and outputs as ``nn.Conv``, but XLA
    CPU's slow conv gradients (and grouped convs over a seed axis) are replaced by im2col GEMMs,
    which batch over seeds as batched GEMMs (see ``_conv``).
    """

    features: int
    kernel: int
    stride: int
    padding: str = "VALID"
    input_scale: float = 1.0  # x is convolved as x * input_scale: FRAME_SCALE for raw frames (see ``_conv``)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, cin = self.kernel, x.shape[-1]
        if self.padding == "SAME":
            x = same_padding(x, k, self.stride)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, cin, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return _conv(self.stride, self.input_scale)(x, kernel) + bias


@jax.custom_jvp
def relu(x: jax.Array) -> jax.Array:
    """``nn.relu`` (same values and gradient), written as a max-reduction over a broadcast pair. XLA
    CPU's YNNPACK then fuses the conv or GEMM before it, its bias and the ReLU into one graph that ends
    in a reduction; a conv that ends a fusion instead ran 3-4x slower on 2 threads (the Nature CNN's
    8x8/4 conv + bias + ReLU at batch 32: 4.1-5.3 ms, and 1.45 ms in this form)."""
    return jnp.maximum(x[..., None], jnp.zeros((2,), x.dtype)).max(-1)


relu.defjvps(lambda g, ans, x: jnp.where(x > 0, g, jnp.zeros_like(g)))


def max_pool(x: jax.Array, size: int) -> jax.Array:
    """``size x size`` max-pool, stride ``size``, "VALID", as a reshape: no reduce_window, whose
    gradient (select-and-scatter) is slow on XLA CPU."""
    h, w, c = x.shape[-3] // size, x.shape[-2] // size, x.shape[-1]
    x = x[..., : h * size, : w * size, :].reshape(x.shape[:-3] + (h, size, w, size, c))
    return x.max(axis=(-4, -2))


class ConvQNet(nn.Module):
    """Conv trunk + dense layers + linear head; one class serves every Q-network here."""

    num_actions: int
    convs: Sequence[tuple[int, ...]]  # (features, kernel, stride) or (features, kernel, stride, pool)
    dense: Sequence[int]
    conv_impl: str = "gemm"  # "gemm" (GemmConv) or "xla" (nn.Conv): same parameters, pick by speed
    padding: str = "VALID"  # of every conv: "VALID" or "SAME"
    cpu_tuned: bool = True  # ReLU as a reduction XLA CPU fuses with its conv (``relu``); else ``nn.relu``

    @nn.compact
    def __call__(self, obs: jax.Array, replace: tuple[int, jax.Array] | None = None) -> jax.Array:
        """Q-values. Each conv activation is sown into the "activations" collection, and
        ``replace=(i, a)`` continues from ``a`` in place of conv_i's activation: together they give
        Grad-CAM the activation and the gradient of a Q-value with respect to it (sown as conv_i_relu)."""
        raw = self.conv_impl == "gemm" and len(self.convs) > 0  # GemmConv conv_0 scales the frames itself
        activation = relu if self.cpu_tuned else nn.relu
        x = obs if raw else obs.astype(jnp.float32) * FRAME_SCALE
        for i, (features, kernel, stride, *pool) in enumerate(self.convs):
            if self.conv_impl == "xla":
                conv = nn.Conv(features, (kernel, kernel), (stride, stride), padding=self.padding, name=f"conv_{i}")
            else:
                conv = GemmConv(features, kernel, stride, self.padding, FRAME_SCALE if i == 0 else 1.0,
                                name=f"conv_{i}")
            x = activation(conv(x))
            if pool:  # non-overlapping max-pool (commutes with the ReLU)
                x = max_pool(x, pool[0])
            if not self.is_initializing():  # keep activations out of the parameter tree
                self.sow("activations", f"conv_{i}_relu", x)
            if replace is not None and replace[0] == i:
                x = replace[1]
        x = x.reshape(x.shape[:-3] + (-1,))
        for i, features in enumerate(self.dense):
            x = activation(nn.Dense(features, name=f"dense_{i}")(x))
        return nn.Dense(self.num_actions, name="head")(x)


NETWORKS: dict[str, Callable[[int], nn.Module]] = {
    # Mnih et al. 2015, for 84x84x4 frames.
    "nature_cnn": lambda n: ConvQNet(n, convs=((32, 8, 4), (64, 4, 2), (64, 3, 1)), dense=(512,)),
    # For the native 21x21x4 Catch grid. Chosen by measurement (4 seeds, 20k steps, CPU): strided
    # convs run 4x faster than a stride-1 first conv (3.6k vs 0.9k env steps/s) and still learn Catch.
    "catch_cnn": lambda n: ConvQNet(n, convs=((16, 3, 2), (32, 3, 2)), dense=(64,)),
    # The MinAtar baseline network (Young & Tian 2019): one 3x3 conv, 128 hidden units.
    "minatar_cnn": lambda n: ConvQNet(n, convs=((16, 3, 1),), dense=(128,)),
    # No convolution at all: the fastest option for vmapped seeds on a CPU.
    "mlp": lambda n: ConvQNet(n, convs=(), dense=(256,)),
    # Bélignon's segmentation-pretrained Double DQN: the FCN encoder fcn_f16-k3_s2_f32-k3_f32-k3_s2
    # (conv_0..conv_2 with their max-pools, jaxfer.segment.fcn), one more conv (64@3x3, as Nature's
    # last), dense 512, head. "SAME" convs, so MinAtar's 10x10 fits (10 -> 5 -> 2 after the pools).
    "seg_ddqn": lambda n: ConvQNet(n, convs=((16, 3, 1, 2), (32, 3, 1), (32, 3, 1, 2), (64, 3, 1)), dense=(512,),
                                   padding="SAME"),
}


def make_network(name: str, num_actions: int, conv_impl: str = "auto", tuning: str = "auto") -> nn.Module:
    """``NETWORKS[name]`` for the code path of ``tuning`` (``jaxfer.backend``); "auto" follows the backend."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network '{name}'; known: {', '.join(NETWORKS)}")
    return NETWORKS[name](num_actions).clone(conv_impl=backend.conv_impl(conv_impl, tuning),
                                             cpu_tuned=backend.cpu_tuned(tuning))
