"""Layer surgery on parameter trees: what a transfer experiment does to a fresh agent.

Every network names its weighted layers in forward order (``jaxfer.networks.layers.layer_names``), so the
modes of the seed papers are list slices:
- ``scratch``: nothing copied;
- ``fine_tune``: every layer but the head copied, all trained (Sabatelli's "fine-tuning");
- ``only_head``: every layer but the head copied and frozen, a new head trained;
- ``first_n`` / ``last_n``: the first / last n weighted layers copied, frozen or fine-tuned
  (Shachaf et al.). The head is re-initialised whenever the action sets differ.
"""
from __future__ import annotations

import jax
import numpy as np

from jaxfer.errors import JaxferError
from jaxfer.networks.layers import layer_names

MODES = ("scratch", "fine_tune", "only_head", "first_n", "last_n")


class TransferError(JaxferError):
    """Layers that cannot be copied (unknown mode, n out of range, shapes that do not fit)."""


def _layers(params) -> dict:
    return params["params"] if "params" in params else params


def copy_layers(source, target, names: list[str]):
    """``target`` with the named layers replaced by the source's; shapes must agree exactly."""
    src, dst = _layers(source), dict(_layers(target))
    for name in names:
        if name not in src or name not in dst:
            missing = "source" if name not in src else "target"
            raise TransferError(f"layer '{name}' is not in the {missing} network "
                                f"({', '.join(layer_names(src if missing == 'source' else dst))})")
        src_shapes = jax.tree.map(np.shape, src[name])
        dst_shapes = jax.tree.map(np.shape, dst[name])
        if src_shapes != dst_shapes:
            raise TransferError(f"layer '{name}' does not fit: source {src_shapes} vs target {dst_shapes}")
        dst[name] = src[name]
    return {"params": dst} if "params" in target else dst


def same_shapes(source, target, names: list[str]) -> bool | None:
    """Whether the named layers have equal shapes in both trees (None if a layer is missing)."""
    src, dst = _layers(source), _layers(target)
    if any(name not in src or name not in dst for name in names):
        return None
    return all(jax.tree.map(np.shape, src[k]) == jax.tree.map(np.shape, dst[k]) for k in names)


def layers_for(mode: str, params, n: int | None = None) -> list[str]:
    """The layers a mode copies from the source, in forward order."""
    names = layer_names(params)
    if mode not in MODES:
        raise TransferError(f"unknown transfer mode '{mode}'; known: {', '.join(MODES)}")
    if mode == "scratch":
        return []
    if mode in ("fine_tune", "only_head"):
        return names[:-1]
    if n is None or not 1 <= n <= len(names):
        raise TransferError(f"{mode} needs 1 <= n <= {len(names)} "
                            f"(the network's weighted layers: {', '.join(names)}), got {n}")
    return names[:n] if mode == "first_n" else names[-n:]


def freeze_mask(params, frozen: list[str]):
    """A tree of bools shaped like ``params``: True for every leaf of a frozen layer."""
    layers = {name: jax.tree.map(lambda _, f=name in frozen: f, layer) for name, layer in _layers(params).items()}
    return {"params": layers} if "params" in params else layers


def apply(mode: str, source, fresh, n: int | None = None, frozen: bool = False):
    """(initial params, freeze mask or None) of a transferred agent.

    ``fresh`` is the target agent's own initialisation; copied layers come from ``source``;
    ``only_head`` always freezes, ``fine_tune`` never does, ``first_n``/``last_n`` follow ``frozen``.
    An agent of several networks (a tree of flax trees, e.g. DQV's ``{"q": ..., "v": ...}``) has each
    network treated alike.
    """
    if "params" not in fresh:  # several networks (DQV's "q" and "v"): the same surgery on each
        parts = {net: apply(mode, source[net], fresh[net], n, frozen) for net in fresh}
        params = {net: p for net, (p, _) in parts.items()}
        if all(mask is None for _, mask in parts.values()):
            return params, None
        return params, {net: jax.tree.map(lambda _: False, p) if mask is None else mask
                        for net, (p, mask) in parts.items()}
    names = layers_for(mode, fresh, n)
    if "head" in names and same_shapes(source, fresh, ["head"]) is False:
        names.remove("head")  # a different action set: the head stays freshly initialised
    params = copy_layers(source, fresh, names)
    freeze = mode == "only_head" or (frozen and mode in ("first_n", "last_n"))
    return params, (freeze_mask(params, names) if freeze and names else None)
