"""Cheaper predictors of transfer that DPTL must beat to be worth its Grad-CAM pass.

Each scores a (source game, target game) pair from the same random-policy frames DPTL uses:
- ``mean_frame_ssim``: SSIM between the two games' mean pictures (no model): do the games draw
  things in the same places?
- ``mask_iou``: weighted Jaccard (sum of minima over sum of maxima) of the two games' mean locally
  adaptive threshold masks, DPTL's own masks (no model): 1 for games with the same masks, 0 for
  masks that never overlap.
- ``activation_cka``: linear CKA (Kornblith et al. 2019) between the source model's last-conv
  activations on source frames and on target frames: does the source's representation of the
  target look like its representation of its own game?
Pictures are ``jaxfer.dptl.pipeline.screens``: (N, H, W) grayscale in [0, 1].
"""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxfer.dptl import similarity

PREDICTORS = ("dptl", "mean_frame_ssim", "mask_iou", "activation_cka")  # column names in the validation rows


def mean_frame_ssim(source_pictures, target_pictures) -> float:
    """SSIM of the mean source picture against the mean target picture."""
    chex.assert_rank([source_pictures, target_pictures], 3)
    chex.assert_equal_shape_suffix([source_pictures, target_pictures], 2)
    return float(similarity.ssim(jnp.mean(source_pictures, axis=0), jnp.mean(target_pictures, axis=0)))


def mask_iou(source_pictures, target_pictures, block_size: int = 35, method: str = "gaussian",
             offset: float = 0.0) -> float:
    """Weighted Jaccard of the games' mean threshold masks (how often each pixel is above its local
    threshold): binary masks that agree give 1, disjoint ones 0."""
    chex.assert_rank([source_pictures, target_pictures], 3)
    chex.assert_equal_shape_suffix([source_pictures, target_pictures], 2)
    a, b = (jnp.mean(similarity.threshold_mask(p, block_size, method, offset), axis=0)
            for p in (source_pictures, target_pictures))
    union = float(jnp.sum(jnp.maximum(a, b)))
    return float(jnp.sum(jnp.minimum(a, b))) / union if union > 0 else float("nan")


def linear_cka(x, y) -> float:
    """Linear CKA of two representations of the same n examples, x (n, p) and y (n, q): 1 for
    representations equal up to an orthogonal transform and an isotropic scaling, 0 for orthogonal ones."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    chex.assert_rank([x, y], 2)
    chex.assert_equal_shape_prefix([x, y], 1)
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    norms = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / norms) if norms > 0 else float("nan")


@functools.partial(jax.jit, static_argnums=(0, 3))
def _activations(net, params, obs, layer: str):
    def one(o):
        _, sown = net.apply(params, o[None], mutable=["activations"])
        return sown["activations"][f"{layer}_relu"][0][0].ravel()

    return jax.lax.map(one, obs, batch_size=net.path.map_batch_size(32))  # the network's code path's batch


def activations(net, params, obs, layer: str) -> np.ndarray:
    """Flattened ReLU activations (N, units) of conv ``layer`` on observations (N, ...)."""
    return np.asarray(_activations(net, params, jnp.asarray(obs), layer))


def activation_cka(net, params, source_obs, target_obs, layer: str) -> float:
    """Linear CKA of the layer's units across the two games. Source and target frames are not
    paired, but the units are: each unit is an example, described by its activations on the frames
    (rows of the transposed activation matrices), so the score does not depend on frame order.
    Needs as many source as target frames."""
    chex.assert_equal_shape([source_obs, target_obs])
    return linear_cka(activations(net, params, source_obs, layer).T, activations(net, params, target_obs, layer).T)
