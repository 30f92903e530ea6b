"""What every network here shares: layer naming, the conv spec, the conv trunk and the input scaling.

Every network names its weighted layers ``conv_i``, ``dense_i`` and ``head`` (in forward order);
``layer_names(params)`` recovers that order from any parameter tree, including one that went
through ``jax.tree`` operations (which sort dict keys alphabetically), so transfer is list slicing.
Every conv is a ``ConvSpec`` and every trunk is ``conv_trunk``: its first conv takes the raw uint8
frames and scales them by ``FRAME_SCALE`` itself (the XLA-CPU kernels fold the scale into the GEMM).
"""
from __future__ import annotations

import re
from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxfer.code_path import CodePath

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


def unit_frames(obs: jax.Array) -> jax.Array:
    """Raw frames scaled to [0, 1], as the first conv of a trunk scales them (for networks with none)."""
    return obs.astype(jnp.float32) * FRAME_SCALE


class ConvSpec(NamedTuple):
    """One conv layer: ``features`` filters of ``kernel`` x ``kernel`` at ``stride``, ``padding`` ("VALID",
    "SAME" or that many zeros on each side), then a non-overlapping ``pool`` x ``pool`` max-pool (1: none)."""

    features: int
    kernel: int
    stride: int = 1
    padding: str | int = "VALID"
    pool: int = 1


def conv_layers(convs: Sequence[ConvSpec], path: CodePath, width: float = 1.0, named: bool = False) -> list[nn.Module]:
    """The convs of ``convs`` on ``path``, channels times ``width``; the first scales raw frames
    (``FRAME_SCALE``). ``named=True`` names them ``conv_i`` (inside ``nn.compact``; ``setup`` names
    them by attribute)."""
    return [path.conv(max(1, round(c.features * width)), c.kernel, c.stride, c.padding,
                      FRAME_SCALE if i == 0 else 1.0, **({"name": f"conv_{i}"} if named else {}))
            for i, c in enumerate(convs)]


def conv_trunk(module: nn.Module, layers: Sequence[nn.Module], convs: Sequence[ConvSpec], obs: jax.Array,
               relu: Callable, path: CodePath, replace: tuple[int, jax.Array] | None = None) -> jax.Array:
    """Raw frames (..., H, W, C) through conv_i, ``relu``, the spec's max-pool (which commutes with the ReLU),
    for every conv; returns (..., H', W', C'). Each activation is sown as ``activations/conv_i_relu``, and
    ``replace=(i, a)`` continues from ``a`` in place of conv_i's: together they give Grad-CAM the
    activation and the gradient of an output with respect to it. No convs: the frames scaled (``unit_frames``)."""
    if not convs:
        return unit_frames(obs)
    x = obs
    for i, (layer, spec) in enumerate(zip(layers, convs)):
        pad = spec.padding if isinstance(spec.padding, int) else 0
        if spec.padding != "SAME" and min(x.shape[-3:-1]) + 2 * pad < spec.kernel:
            raise ValueError(f"it shrinks below conv_{i}'s {spec.kernel}x{spec.kernel} kernel")
        x = relu(layer(x))
        if spec.pool > 1:
            if min(x.shape[-3:-1]) < spec.pool:
                raise ValueError(f"it shrinks below conv_{i}'s {spec.pool}x{spec.pool} max-pool")
            x = path.max_pool(x, spec.pool)
        if not module.is_initializing():  # keep activations out of the parameter tree
            module.sow("activations", f"conv_{i}_relu", x)
        if replace is not None and replace[0] == i:
            x = replace[1]
    return x
