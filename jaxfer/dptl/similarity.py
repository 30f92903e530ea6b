"""DPTL pieces (Joo & Kim 2020): locally adaptive threshold of game frames, fast SSIM, the score.

The transferability of a source model to a target game = mean SSIM between the source's CAM on
target frames and those frames' locally adaptive threshold masks. Filters are separable, so they
run as banded-matrix products: XLA CPU turns them into GEMMs, which beat its convolutions here.
- ``threshold_local`` matches ``skimage.filters.threshold_local`` (methods "gaussian" and "mean",
  scipy's "reflect" border: d c b a | a b c d | d c b a; Gaussian truncated at 4 sigma).
- ``ssim`` is ``dm_pix.ssim`` (11x11 Gaussian, sigma 1.5, valid window) with the blur as matrix
  products; equal to skimage's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1.0)``.
"""
from __future__ import annotations

import functools

import chex
import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

from jaxfer import stats
from jaxfer.code_path import PLAIN, CodePath


def _reflect(j: int, n: int) -> int:
    j %= 2 * n
    return j if j < n else 2 * n - 1 - j


def reflect_filter_matrix(n: int, weights: np.ndarray) -> np.ndarray:
    """(n, n) matrix M with (M @ x) = the 1-D correlation of x with ``weights`` under reflection."""
    r = len(weights) // 2
    m = np.zeros((n, n))
    for i in range(n):
        for k, w in enumerate(weights):
            m[i, _reflect(i + k - r, n)] += w
    return m


def valid_filter_matrix(n: int, weights: np.ndarray) -> np.ndarray:
    """(n - len + 1, n) banded matrix of a 'valid' 1-D correlation."""
    size = len(weights)
    m = np.zeros((n - size + 1, n))
    for i in range(n - size + 1):
        m[i, i : i + size] = weights
    return m


def _block_weights(block_size: int, method: str) -> np.ndarray:
    if block_size % 2 == 0 or block_size < 3:
        raise ValueError(f"block_size must be odd and >= 3, got {block_size}")
    if method == "mean":
        return np.full(block_size, 1.0 / block_size)
    if method != "gaussian":
        raise ValueError(f"threshold method must be 'gaussian' or 'mean', got '{method}'")
    sigma = (block_size - 1) / 6.0
    radius = int(4.0 * sigma + 0.5)  # scipy.ndimage.gaussian_filter's default truncate=4
    x = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


@functools.lru_cache(maxsize=32)
def _threshold_matrices(h: int, w: int, block_size: int, method: str):
    weights = _block_weights(block_size, method)  # numpy, not jnp: a cached jnp array made under a trace leaks it
    return (reflect_filter_matrix(h, weights).astype(np.float32), reflect_filter_matrix(w, weights).astype(np.float32))


def threshold_local(frames: jax.Array, block_size: int = 35, method: str = "gaussian", offset: float = 0.0):
    """Local threshold surface of frames (..., H, W): weighted local mean minus ``offset``."""
    mh, mw = _threshold_matrices(frames.shape[-2], frames.shape[-1], block_size, method)
    x = frames.astype(jnp.float32)
    return jnp.einsum("ih,...hw,jw->...ij", mh, x, mw, precision=jax.lax.Precision.HIGHEST) - offset


def threshold_mask(frames: jax.Array, block_size: int = 35, method: str = "gaussian", offset: float = 0.0):
    """1.0 where a pixel is brighter than its local threshold, else 0.0 (what DPTL compares CAMs with)."""
    return (frames.astype(jnp.float32) > threshold_local(frames, block_size, method, offset)).astype(jnp.float32)


@functools.lru_cache(maxsize=32)
def _ssim_matrices(h: int, w: int, size: int = 11, sigma: float = 1.5):
    hw = size // 2
    f = np.exp(-0.5 * ((np.arange(size) - hw) / sigma) ** 2)
    f /= f.sum()
    return valid_filter_matrix(h, f).astype(np.float32), valid_filter_matrix(w, f).astype(np.float32)


def ssim(a: jax.Array, b: jax.Array) -> jax.Array:
    """Per-image SSIM of (..., H, W) images in [0, 1] (dm-pix with a GEMM Gaussian blur)."""
    gh, gw = _ssim_matrices(a.shape[-2], a.shape[-1])

    def blur(z):  # (..., H, W, C) -> (..., H - 10, W - 10, C)
        return jnp.einsum("ih,...hwc,jw->...ijc", gh, z, gw, precision=jax.lax.Precision.HIGHEST)

    return dm_pix.ssim(a[..., None].astype(jnp.float32), b[..., None].astype(jnp.float32), max_val=1.0, filter_fn=blur)


def cam_mask_ssim(cams, frames, block_size: int = 35, method: str = "gaussian", offset: float = 0.0,
                  path: CodePath = PLAIN):
    """Per-frame SSIM(CAM, threshold mask), in chunks of ``path.chunk``: XLA CPU runs these GEMMs
    faster per frame on a few frames at a time than on a thousand."""
    one = lambda x: ssim(x[0], threshold_mask(x[1], block_size, method, offset))  # noqa: E731
    return jax.lax.map(one, (cams, frames), batch_size=path.map_batch_size(25))


_cam_mask_ssim = jax.jit(cam_mask_ssim, static_argnums=(2, 3, 5))


def frame_scores(cams: jax.Array, frames: jax.Array, block_size: int = 35, method: str = "gaussian",
                 offset: float = 0.0, path: CodePath = PLAIN) -> np.ndarray:
    """Per-frame SSIM(CAM, threshold mask): ``cams`` (N, H, W) in [0, 1], ``frames`` (N, H, W)
    grayscale at the CAM's resolution, on the code path ``path`` (the source network's). Kept per
    frame so that several source models' scores of the same frames can be averaged before the bootstrap."""
    chex.assert_equal_shape([cams, frames])
    chex.assert_rank(cams, 3)
    return np.asarray(_cam_mask_ssim(cams, frames, block_size, method, offset, path))


def summarise(per_frame, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean of per-frame scores with a percentile bootstrap CI over frames."""
    low, high = stats.bootstrap_ci(per_frame, n_boot=n_boot, seed=seed)
    return {"score": float(np.mean(per_frame)), "ci_low": float(low), "ci_high": float(high), "frames": len(per_frame)}


def score(cams: jax.Array, frames: jax.Array, block_size: int = 35, method: str = "gaussian",
          offset: float = 0.0, n_boot: int = 2000, seed: int = 0, path: CodePath = PLAIN) -> dict:
    """DPTL transferability: mean SSIM(CAM, threshold mask) over frames, with a bootstrap CI."""
    return summarise(frame_scores(cams, frames, block_size, method, offset, path), n_boot, seed)
