"""Network building blocks: GemmConv with SAME padding and the reshape max-pool equal flax's ops."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfer.nets import ConvQNet, GemmConv, max_pool


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel,size", [(3, 10), (4, 9), (8, 84)])
def test_gemm_conv_same_padding_matches_nn_conv(stride, kernel, size):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, 3))
    conv = GemmConv(5, kernel, stride, "SAME")
    params = conv.init(jax.random.PRNGKey(1), x)
    ref = nn.Conv(5, (kernel, kernel), (stride, stride), padding="SAME").apply(params, x)
    np.testing.assert_allclose(conv.apply(params, x), ref, rtol=1e-5, atol=1e-5)


def test_max_pool_matches_flax_and_drops_odd_border():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 9, 9, 3))
    np.testing.assert_array_equal(max_pool(x, 2), nn.max_pool(x, (2, 2), (2, 2)))


def test_pooled_same_net_has_same_params_for_both_conv_impls():
    x = jax.random.randint(jax.random.PRNGKey(0), (2, 10, 10, 4), 0, 256).astype(jnp.uint8)
    net = ConvQNet(3, convs=((16, 3, 1, 2), (32, 3, 1)), dense=(8,), padding="SAME")
    params = net.init(jax.random.PRNGKey(1), x)
    assert params["params"]["dense_0"]["kernel"].shape == (5 * 5 * 32, 8)
    np.testing.assert_allclose(net.apply(params, x), net.clone(conv_impl="xla").apply(params, x), rtol=1e-5, atol=1e-5)
