"""Q-networks whose weighted layers carry ordered names, so transfer is list slicing.

Every network names its weighted layers ``conv_i``, ``dense_i`` and ``head`` (in forward order);
``layer_names(params)`` recovers that order from any parameter tree, including one that went
through ``jax.tree`` operations (which sort dict keys alphabetically).
"""
from __future__ import annotations

import functools
import re
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

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


def _scale(obs: jax.Array) -> jax.Array:
    return obs.astype(jnp.float32) / 255.0


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


def _space_to_depth_patches(x: jax.Array, k: int, s: int) -> jax.Array:
    """im2col of a k x k, stride-s conv when s divides k: s x s blocks of x become channels, so the
    patches are those of a (k/s) x (k/s) stride-1 conv. Their gradient adds (k/s)^2 shifted blocks
    instead of k^2 strided ones (2.5x faster for the Nature CNN's 4x4/2 conv)."""
    n, cin = k // s, x.shape[-1]
    ho, wo = (x.shape[-3] - k) // s + 1, (x.shape[-2] - k) // s + 1
    hb, wb = ho - 1 + n, wo - 1 + n
    x = x[..., : s * hb, : s * wb, :].reshape(x.shape[:-3] + (hb, s, wb, s, cin))
    x = jnp.swapaxes(x, -4, -3).reshape(x.shape[:-5] + (hb, wb, s * s * cin))
    return _patches(x, n, 1)


def _space_to_depth_kernel(kernel: jax.Array, s: int) -> jax.Array:
    """(k, k, cin, cout) -> the matrix that multiplies ``_space_to_depth_patches``."""
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


@functools.cache
def _conv(stride: int) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``(x, kernel) -> "VALID" conv``: XLA's conv op where no gradient is taken, im2col GEMMs where one is.

    Measured on XLA CPU (2 cores, Nature CNN and seg_ddqn layers at batch 32): the conv op's forward is
    up to 4x faster than im2col + GEMM, but its gradients run 10-100x slower inside ``lax.scan`` and,
    vmapped over seeds (a batched kernel), it becomes a grouped conv 3x slower than batched GEMMs.
    So target networks, acting and frozen layers run the conv op (once per seed when the kernel is
    batched), and a differentiated conv runs im2col + GEMM, whose patches also give the kernel's
    gradient; the input's gradient goes through space-to-depth where the stride divides the kernel.
    """

    def forward(x, kernel):
        lead = x.shape[:-3]
        y = jax.lax.conv_general_dilated(x.reshape((-1, *x.shape[-3:])), kernel, (stride, stride), "VALID",
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

    def conv_fwd(x, kernel):
        patches = _patches(x, kernel.shape[0], stride)
        return patches @ kernel.reshape(-1, kernel.shape[-1]), (x, patches, kernel)

    def conv_bwd(residuals, g):
        x, patches, kernel = residuals
        k = kernel.shape[0]
        if stride > 1 and k % stride == 0:
            kmat, to_patches = _space_to_depth_kernel(kernel, stride), lambda x: _space_to_depth_patches(x, k, stride)
        else:
            kmat, to_patches = kernel.reshape(-1, kernel.shape[-1]), lambda x: _patches(x, k, stride)
        keep = jax.lax.optimization_barrier if patches.size >= _BARRIER_MIN_PATCHES else (lambda a: a)
        rows_g, rows_patches = g.reshape(-1, g.shape[-1]), patches.reshape(-1, patches.shape[-1])
        grad_kernel = keep(keep(rows_g.T) @ rows_patches).T.reshape(kernel.shape)
        grad_x = jax.vjp(to_patches, x)[1](g @ keep(kmat.T))[0]
        return grad_x, grad_kernel

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

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, cin = self.kernel, x.shape[-1]
        if self.padding == "SAME":
            x = same_padding(x, k, self.stride)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, cin, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return _conv(self.stride)(x, kernel) + bias


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

    @nn.compact
    def __call__(self, obs: jax.Array, replace: tuple[int, jax.Array] | None = None) -> jax.Array:
        """Q-values. Each conv activation is sown into the "activations" collection, and
        ``replace=(i, a)`` continues from ``a`` in place of conv_i's activation: together they give
        Grad-CAM the activation and the gradient of a Q-value with respect to it (sown as conv_i_relu)."""
        x = _scale(obs)
        for i, (features, kernel, stride, *pool) in enumerate(self.convs):
            if self.conv_impl == "xla":
                conv = nn.Conv(features, (kernel, kernel), (stride, stride), padding=self.padding, name=f"conv_{i}")
            else:
                conv = GemmConv(features, kernel, stride, self.padding, name=f"conv_{i}")
            x = nn.relu(conv(x))
            if pool:  # non-overlapping max-pool (commutes with the ReLU)
                x = max_pool(x, pool[0])
            if not self.is_initializing():  # keep activations out of the parameter tree
                self.sow("activations", f"conv_{i}_relu", x)
            if replace is not None and replace[0] == i:
                x = replace[1]
        x = x.reshape(x.shape[:-3] + (-1,))
        for i, features in enumerate(self.dense):
            x = nn.relu(nn.Dense(features, name=f"dense_{i}")(x))
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


def make_network(name: str, num_actions: int, conv_impl: str = "gemm") -> nn.Module:
    if name not in NETWORKS:
        raise ValueError(f"unknown network '{name}'; known: {', '.join(NETWORKS)}")
    return NETWORKS[name](num_actions).clone(conv_impl=conv_impl)
