"""Grad-CAM against an independent computation: finite-difference gradients on a tiny network."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfer.dptl import gradcam
from jaxfer.networks.layers import ConvSpec
from jaxfer.networks.q_nets import ConvQNet, make_network

NET = ConvQNet(3, convs=(ConvSpec(6, 3, 1), ConvSpec(4, 2, 1)), dense=(8,))
OBS = jax.random.randint(jax.random.PRNGKey(0), (8, 8, 2), 0, 256).astype(jnp.uint8)
PARAMS = NET.init(jax.random.PRNGKey(1), OBS[None])


def _finite_difference_cam(layer, index, action):
    """Grad-CAM built by hand: activation read off a truncated forward, gradient by central differences."""
    _, sown = NET.apply(PARAMS, OBS[None], mutable=["activations"])
    a = np.asarray(sown["activations"][f"{layer}_relu"][0][0], np.float64)
    q = lambda x: float(NET.apply(PARAMS, OBS[None], replace=(index, jnp.asarray(x, jnp.float32)[None]))[0, action])  # noqa: E731
    g = np.zeros_like(a)
    eps = 1e-2
    for idx in np.ndindex(a.shape):
        up, down = a.copy(), a.copy()
        up[idx] += eps
        down[idx] -= eps
        g[idx] = (q(up) - q(down)) / (2 * eps)
    raw = np.maximum((a * g.mean(axis=(0, 1))).sum(-1), 0)
    assert raw.max() > raw.min(), "degenerate case: the map is constant, the test would compare nothing"
    raw = (raw - raw.min()) / (raw.max() - raw.min())
    return np.asarray(jax.image.resize(jnp.asarray(raw, jnp.float32), OBS.shape[:2], "bilinear"))


@pytest.mark.parametrize("layer, index", [("conv_0", 0), ("conv_1", 1)])
@pytest.mark.parametrize("action", [0, 2])
def test_gradcam_matches_finite_differences(layer, index, action):
    got = gradcam.cams(NET, PARAMS, OBS[None], layer, actions=jnp.array([action]))[0]
    np.testing.assert_allclose(got, _finite_difference_cam(layer, index, action), atol=2e-3)


def test_default_action_is_greedy_and_layer_defaults_to_last_conv():
    greedy = int(NET.apply(PARAMS, OBS[None])[0].argmax())
    np.testing.assert_allclose(gradcam.cams(NET, PARAMS, OBS[None])[0],
                               gradcam.cams(NET, PARAMS, OBS[None], "conv_1", actions=jnp.array([greedy]))[0])


@pytest.mark.parametrize("method", gradcam.METHODS)
def test_batch_shapes_and_range(method):
    net = make_network("nature_cnn", 6)
    obs = jax.random.randint(jax.random.PRNGKey(2), (5, 84, 84, 4), 0, 256).astype(jnp.uint8)
    params = net.init(jax.random.PRNGKey(3), obs[:1])
    maps = np.asarray(gradcam.cams(net, params, obs, method=method, chunk=2))
    assert maps.shape == (5, 84, 84) and maps.min() >= 0.0 and maps.max() <= 1.0
    one = np.asarray(gradcam.cams(net, params, obs[3:4], method=method))
    np.testing.assert_allclose(maps[3], one[0], atol=1e-5)  # batching and chunking change nothing


def test_unknown_layer_lists_the_available_ones():
    with pytest.raises(gradcam.GradCamError,
                       match="layer 'conv_7' is not a conv layer of this network; available: conv_0, conv_1"):
        gradcam.cams(NET, PARAMS, OBS[None], "conv_7")
