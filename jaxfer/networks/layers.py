"""Layer naming and input scaling every network here shares.

Every network names its weighted layers ``conv_i``, ``dense_i`` and ``head`` (in forward order);
``layer_names(params)`` recovers that order from any parameter tree, including one that went
through ``jax.tree`` operations (which sort dict keys alphabetically), so transfer is list slicing.
"""
from __future__ import annotations

import re

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
