"""DPTL's threshold and SSIM against scikit-image, and the score's bookkeeping."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfer import envs
from jaxfer.dptl import similarity

skimage_filters = pytest.importorskip("skimage.filters")
skimage_metrics = pytest.importorskip("skimage.metrics")
pytestmark = pytest.mark.stack  # also run on the accelerator host's stack (.ci/run)


def _frames(n=3, size=84, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.random((n, size, size))
    base[:, 20:40, 10:30] += 2.0  # structure, not only noise
    return base.astype(np.float32)


@pytest.mark.parametrize("method", ["gaussian", "mean"])
@pytest.mark.parametrize("block_size", [11, 35])
def test_threshold_local_matches_skimage(method, block_size):
    frames = _frames()
    got = np.asarray(similarity.threshold_local(frames, block_size, method, offset=0.05))
    for i in range(len(frames)):
        want = skimage_filters.threshold_local(frames[i].astype(np.float64), block_size, method=method, offset=0.05)
        np.testing.assert_allclose(got[i], want, atol=2e-5)


def test_threshold_mask_on_catch_frames():
    env = envs.make("catch/v2", obs="pixels84")
    _, obs = env.reset(jax.random.PRNGKey(0))
    frame = np.asarray(obs[..., -1], np.float64) / 255.0
    want = frame > skimage_filters.threshold_local(frame, 35)
    np.testing.assert_array_equal(np.asarray(similarity.threshold_mask(jnp.asarray(frame, jnp.float32)[None]))[0], want)


def test_ssim_matches_skimage():
    a, b = _frames(4, seed=1) / 3.0, _frames(4, seed=2) / 3.0
    got = np.asarray(similarity.ssim(a, b))
    for i in range(4):
        want = skimage_metrics.structural_similarity(
            a[i].astype(np.float64), b[i].astype(np.float64), gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=1.0)
        assert got[i] == pytest.approx(want, abs=1e-5)
    assert np.asarray(similarity.ssim(a, a)) == pytest.approx(1.0, abs=1e-5)


def test_score_of_a_cam_equal_to_the_mask_is_one():
    frames = jnp.asarray(_frames(8, seed=3))
    masks = similarity.threshold_mask(frames)
    perfect = similarity.score(masks, frames)
    noise = similarity.score(jax.random.uniform(jax.random.PRNGKey(0), frames.shape), frames)
    assert perfect["score"] == pytest.approx(1.0, abs=1e-5) and perfect["frames"] == 8
    assert noise["ci_low"] <= noise["score"] <= noise["ci_high"] < 0.5


def test_bad_block_size():
    with pytest.raises(ValueError, match="block_size must be odd"):
        similarity.threshold_local(jnp.zeros((1, 10, 10)), 10)


def test_filters_first_built_under_jit_work_outside_it():
    """The filter matrices are cached: the cache must not keep values traced by the first caller."""
    frames = jnp.asarray(_frames(2, size=23, seed=4))
    inside = jax.jit(lambda f: similarity.threshold_mask(f, 11))(frames)
    np.testing.assert_array_equal(similarity.threshold_mask(frames, 11), inside)
    scaled = frames / 3
    np.testing.assert_allclose(jax.jit(similarity.ssim)(scaled, scaled), similarity.ssim(scaled, scaled), atol=1e-6)
