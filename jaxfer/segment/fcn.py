"""Bélignon's FCN ``fcn_f16-k3_s2_f32-k3_f32-k3_s2_d8`` in flax, with a trunk a Q-network can take over.

The encoder IS the first three conv layers of ``jaxfer.networks.q_nets.NETWORKS["seg_ddqn"]`` (conv 16@3x3,
2x2 max-pool, conv 32@3x3, conv 32@3x3, 2x2 max-pool; "SAME" convs, so MinAtar's 10x10 fits), built
from the same spec with the same layer code and names (``conv_0..conv_2``), so exporting it is
``jaxfer.transfer.surgery`` copying ``first_n: 3``. The decoder is one transposed conv, kernel 8, stride =
the encoder's total stride (4), to per-pixel class logits, named ``head`` so ``layer_names`` orders
the tree. Its output is cropped to the input resolution: FCN-style, offset (kernel - stride) / 2, so
the centre of each input cell's 8x8 footprint lands on the centre of the 4x4 pixels it pooled.
Its convs, pools and decoder are the code path's (``path``): flax's ``Conv`` / ``ConvTranspose`` by
default, the XLA-CPU GEMM kernels on that path.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import chex
import flax.linen as nn
import jax

from jaxfer.code_path import PLAIN, CodePath
from jaxfer.networks import q_nets
from jaxfer.networks.layers import ConvSpec, conv_layers, conv_trunk

NETWORK = "seg_ddqn"  # the Q-network whose first convs are this FCN's encoder
ENCODER = q_nets.NETWORKS[NETWORK](1).convs[:3]
DECODER_KERNEL = 8  # the seed's "d8"


class FCN(nn.Module):
    """Per-pixel class logits (..., H, W, num_classes) of uint8 observations (..., H, W, C)."""

    num_classes: int
    convs: Sequence[ConvSpec] = ENCODER
    kernel: int = DECODER_KERNEL
    path: CodePath = PLAIN

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        height, width = obs.shape[-3:-1]
        x = conv_trunk(self, conv_layers(self.convs, self.path, named=True), self.convs, obs, nn.relu, self.path)
        stride = math.prod(c.stride * c.pool for c in self.convs)
        y = self.path.conv_transpose(self.num_classes, self.kernel, stride, name="head")(x)
        off = (self.kernel - stride) // 2
        if y.shape[-3] < off + height or y.shape[-2] < off + width:
            raise ValueError(f"the FCN cannot return {height}x{width} maps (its decoder reaches "
                             f"{y.shape[-3] - off}x{y.shape[-2] - off})")
        y = y[..., off : off + height, off : off + width, :]
        chex.assert_shape(y, obs.shape[:-1] + (self.num_classes,))
        return y
