"""Layer naming and input scaling every network here shares.

Every network names its weighted layers ``conv_i``, ``dense_i`` and ``head`` (in forward order);
``layer_names(params)`` recovers that order from any parameter tree, including one that went
through ``jax.tree`` operations (which sort dict keys alphabetically), so transfer is list slicing.
"""
from __future__ import annotations

import re

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


FRAME_SCALE = 1 / 255  # raw frames in [0, 255] -> [0, 1]


def same_padding(x: jax.Array, kernel: int, stride: int) -> jax.Array:
    """Zero-pad H and W as XLA's "SAME" does (output size = ceil(input / stride))."""
    pads = []
    for size in x.shape[-3:-1]:
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads.append((total // 2, total - total // 2))
    return jnp.pad(x, [(0, 0)] * (x.ndim - 3) + pads + [(0, 0)])


class Conv(nn.Conv):
    """``nn.Conv`` of ``x * input_scale``: takes raw integer frames as ``jaxfer.xla_cpu.kernels.GemmConv`` does,
    with the same parameters."""

    input_scale: float = 1.0

    def __call__(self, inputs: jax.Array) -> jax.Array:
        if self.input_scale != 1.0:
            inputs = inputs.astype(jnp.float32) * self.input_scale
        return super().__call__(inputs)
