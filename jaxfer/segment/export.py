"""FCN checkpoints, and their conv layers exported as a Double DQN's trunk through ``jaxfer.transfer.surgery``.

``fcn.npz`` holds the FCN parameters (seed axis first, keys ``params/conv_0/kernel`` ...) and what
they were trained on (env id, obs mode, observation shape, class count), so a DDQN whose
observations differ is refused in one line: the conv weights alone cannot tell (a 3x3 kernel fits
84x84 and 10x10 frames alike).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import jax
import numpy as np

from jaxfer.networks.layers import layer_names
from jaxfer.runtime import files
from jaxfer.segment.config import SegmentError
from jaxfer.transfer import surgery

FILE = "fcn.npz"


def save(path: Path, params, env: str, obs: str, obs_shape: tuple, num_classes: int) -> None:
    files.save_tree(path, params, env=env, obs=obs, obs_shape=np.asarray(obs_shape), num_classes=num_classes)


def load(path: str | Path) -> tuple[dict, dict]:
    """(params with the seed axis first, meta) of an FCN checkpoint: a ``jaxfer segment`` output
    directory, its ``fcn`` directory, or the ``fcn.npz`` itself."""
    path = Path(path)
    candidates = [path / "fcn" / FILE, path / FILE] if path.is_dir() else [path]
    file = next((c for c in candidates if c.is_file()), None)
    if file is None:
        raise SegmentError(f"FCN checkpoint '{path}' does not exist (no {FILE}: an unfinished `jaxfer segment` run?)")
    try:
        with np.load(file) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        raise SegmentError(f"FCN checkpoint '{file}' is not a .npz file") from None
    keys = ("__env", "__obs", "__obs_shape", "__num_classes")
    if not all(k in arrays for k in keys) or not any(k.startswith("params/") for k in arrays):
        raise SegmentError(f"FCN checkpoint '{file}' is not an FCN written by `jaxfer segment`")
    tree: dict = {}
    for name, x in arrays.items():
        if name.startswith("params/"):
            *parents, leaf = name.split("/")
            node = tree
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = x
    meta = {"source": f"FCN checkpoint '{file}'", "file": str(file), "env": str(arrays["__env"]),
            "obs": str(arrays["__obs"]), "obs_shape": tuple(int(s) for s in arrays["__obs_shape"]),
            "num_classes": int(arrays["__num_classes"])}
    return tree, meta


def check_input(meta: dict, env_id: str, obs: str, obs_shape: tuple) -> None:
    """The FCN must have seen observations of the DDQN's shape (its trunk was trained on them)."""
    if tuple(meta["obs_shape"]) != tuple(obs_shape):
        raise SegmentError(f"{meta['source']} takes {meta['env']} '{meta['obs']}' observations of shape "
                           f"{tuple(meta['obs_shape'])}, but the DDQN's {env_id} '{obs}' observations have shape "
                           f"{tuple(obs_shape)}")


def encoder_layers(fcn_params) -> list[str]:
    """The FCN's conv layers (everything but its decoder ``head``), in forward order."""
    return [name for name in layer_names(fcn_params) if name != "head"]


def export(fcn_params, fresh, frozen: bool):
    """(initial DDQN params, freeze mask or None): the FCN's convs as the first layers of ``fresh``
    (seed axes first, FCN seed i -> DDQN seed i), copied by ``jaxfer.transfer.surgery`` mode ``first_n``."""
    num_seeds = len(jax.tree.leaves(fresh)[0])
    held = len(jax.tree.leaves(fcn_params)[0])
    if held < num_seeds:
        raise SegmentError(f"the FCN checkpoint holds {held} seeds but the DDQN trains {num_seeds} "
                           "(seed i starts from FCN seed i)")
    fcn_params = jax.tree.map(lambda x: x[:num_seeds], fcn_params)
    return surgery.apply("first_n", fcn_params, fresh, n=len(encoder_layers(fcn_params)), frozen=frozen)
