"""XLA-CPU kernels: convolutions, ReLU and max-pooling written so that XLA's CPU backend runs them fast.

XLA CPU's convolution gradients are slow inside ``lax.scan`` and become grouped convolutions under
``vmap``; it fuses some patterns badly (see each function, and docs/performance.md for the numbers and
the commands that measured them). ``jaxfer.code_path.CodePath`` selects these kernels on the
XLA-CPU path only; elsewhere the networks use flax's own layers.
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


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
# gradient one against a transposed kernel, both slower than with the transposes materialised. An
# optimization barrier keeps each transpose; below this many patch elements the copies cost more than
# they save, so small convs keep the folded form (docs/performance.md).
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

    On XLA CPU the conv op's forward is faster than im2col + GEMM, but its gradients are far slower
    inside ``lax.scan`` and, vmapped over seeds (a batched kernel), it becomes a slow grouped conv
    (docs/performance.md). So target networks, acting and frozen layers run the conv op (once per seed
    when the kernel is batched), and a differentiated conv runs im2col + GEMM, whose patches also give
    the kernel's gradient. Where the stride divides the kernel the patches are (k/s)^2 slices of the
    space-to-depth input in a buffer of its own instead of k^2 strided slices, which builds them faster.
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
    """A strided 2-D convolution ("VALID", "SAME" or ``padding`` zeros on each side) whose gradients are
    matrix products.

    Same parameters (``kernel`` (kh, kw, cin, cout), ``bias``) and outputs as ``nn.Conv``, but XLA
    CPU's slow conv gradients (and grouped convs over a seed axis) are replaced by im2col GEMMs,
    which batch over seeds as batched GEMMs (see ``_conv``).
    """

    features: int
    kernel: int
    stride: int
    padding: str | int = "VALID"
    input_scale: float = 1.0  # x is convolved as x * input_scale: FRAME_SCALE for raw frames (see ``_conv``)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, cin = self.kernel, x.shape[-1]
        if self.padding == "SAME":
            x = same_padding(x, k, self.stride)
        elif not isinstance(self.padding, str) and self.padding:
            x = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(self.padding, self.padding)] * 2 + [(0, 0)])
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, cin, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return _conv(self.stride, self.input_scale)(x, kernel) + bias


class GemmConvTranspose(nn.Module):
    """A "VALID" transposed conv (kernel a multiple of the stride) as one matrix product plus
    shifted adds: same parameters and outputs as ``nn.ConvTranspose``, but no conv op, whose
    gradient is slow on XLA CPU and which vmaps over seeds as a grouped conv."""

    features: int
    kernel: int
    stride: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s, cin = self.kernel, self.stride, x.shape[-1]
        if k % s:
            raise ValueError(f"kernel {k} must be a multiple of stride {s}")
        m, (h, w) = k // s, x.shape[-3:-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, cin, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        flipped = kernel[::-1, ::-1].transpose(2, 0, 1, 3).reshape(cin, k * k * self.features)
        z = (x @ flipped).reshape(x.shape[:-1] + (m, s, m, s, self.features))  # input cell -> its k x k footprint
        lead = [(0, 0)] * (x.ndim - 3)
        out = sum(jnp.pad(z[..., a, :, b, :, :], lead + [(a, m - 1 - a), (b, m - 1 - b)] + [(0, 0)] * 3)
                  for a in range(m) for b in range(m))  # cell (i, j)'s block (a, b) lands on output cell (i+a, j+b)
        out = jnp.moveaxis(out, -4, -3)  # (..., h+m-1, s, w+m-1, s, features)
        return out.reshape(x.shape[:-3] + ((h + m - 1) * s, (w + m - 1) * s, self.features)) + bias


@jax.custom_jvp
def relu(x: jax.Array) -> jax.Array:
    """``nn.relu`` (same values and gradient), written as a max-reduction over a broadcast pair. XLA
    CPU's YNNPACK then fuses the conv before it, its bias and the ReLU into one graph that ends in a
    reduction; a conv that ends a fusion instead runs several times slower. After a dense layer it was
    no faster than ``nn.relu`` (docs/performance.md), so only convs take it."""
    return jnp.maximum(x[..., None], jnp.zeros((2,), x.dtype)).max(-1)


relu.defjvps(lambda g, ans, x: jnp.where(x > 0, g, jnp.zeros_like(g)))


def max_pool(x: jax.Array, size: int) -> jax.Array:
    """``size x size`` max-pool, stride ``size``, "VALID", as a reshape: no reduce_window, whose
    gradient (select-and-scatter) is slow on XLA CPU."""
    h, w, c = x.shape[-3] // size, x.shape[-2] // size, x.shape[-1]
    x = x[..., : h * size, : w * size, :].reshape(x.shape[:-3] + (h, size, w, size, c))
    return x.max(axis=(-4, -2))
