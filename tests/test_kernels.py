"""Network building blocks: GemmConv, the reshape max-pool and the fused-form ReLU equal flax's ops."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfer.code_path import PLAIN, CodePath
from jaxfer.networks.layers import FRAME_SCALE, ConvSpec
from jaxfer.networks.q_nets import ConvQNet
from jaxfer.xla_cpu.kernels import GemmConv, max_pool, relu


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
    net = ConvQNet(3, convs=(ConvSpec(16, 3, 1, "SAME", 2), ConvSpec(32, 3, 1, "SAME")), dense=(8,),
                   path=CodePath(True, "gemm"))
    params = net.init(jax.random.PRNGKey(1), x)
    assert params["params"]["dense_0"]["kernel"].shape == (5 * 5 * 32, 8)
    np.testing.assert_allclose(net.apply(params, x), net.clone(path=PLAIN).apply(params, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel,stride,padding", [(8, 4, "VALID"), (4, 2, "VALID"), (3, 1, "SAME"), (3, 2, "SAME")])
def test_gemm_conv_gradients_match_nn_conv(kernel, stride, padding):
    """GemmConv's custom gradients (im2col for the kernel, space-to-depth for the input when the stride
    divides the kernel) equal autodiff of flax's conv."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 20, 20, 3))
    conv = GemmConv(4, kernel, stride, padding)
    params = conv.init(jax.random.PRNGKey(1), x)
    ref = nn.Conv(4, (kernel, kernel), (stride, stride), padding=padding)
    y = ref.apply(params, x)
    cotangent = jax.random.normal(jax.random.PRNGKey(2), y.shape)
    grads = jax.vjp(conv.apply, params, x)[1](cotangent)
    ref_grads = jax.vjp(ref.apply, params, x)[1](cotangent)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


def test_gemm_conv_over_a_seed_axis_equals_each_seed_alone():
    """Vmapped over seeds (a batched kernel: one conv per seed forward, batched GEMMs backward)."""
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 12, 12, 4))
    conv = GemmConv(5, 4, 2)
    params = jax.vmap(conv.init)(jax.random.split(jax.random.PRNGKey(1), 3), x)

    def loss(p, xs):
        return (conv.apply(p, xs) ** 2).sum()

    y, grads = jax.vmap(jax.value_and_grad(loss))(params, x)
    for i in range(3):
        p_i = jax.tree.map(lambda a: a[i], params)
        y_i, g_i = jax.value_and_grad(loss)(p_i, x[i])
        np.testing.assert_allclose(y[i], y_i, rtol=1e-5)
        for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(g_i)):
            np.testing.assert_allclose(g[i], r, rtol=1e-4, atol=1e-5)
    shared = jax.vmap(conv.apply, in_axes=(None, 0))(jax.tree.map(lambda a: a[0], params), x)  # frames batched only
    np.testing.assert_allclose(shared[1], conv.apply(jax.tree.map(lambda a: a[0], params), x[1]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seeds", [None, 2])
def test_gemm_conv_on_raw_frames_matches_nn_conv_on_scaled_frames(seeds):
    """A first layer on uint8 frames (scale folded into the kernel; patches from a space-to-depth buffer
    of its own, as for the Nature CNN's 8x8/4 conv at batch 32) equals flax's conv on the scaled frames,
    forward and kernel gradient, alone and vmapped over seeds."""
    lead = (32,) if seeds is None else (seeds, 32)
    frames = jax.random.randint(jax.random.PRNGKey(0), (*lead, 84, 84, 4), 0, 256).astype(jnp.uint8)
    conv, ref = GemmConv(8, 8, 4, input_scale=FRAME_SCALE), nn.Conv(8, (8, 8), (4, 4), padding="VALID")
    params = ref.init(jax.random.PRNGKey(1), frames.astype(jnp.float32))
    cotangent = jax.random.normal(jax.random.PRNGKey(2), (*lead, 20, 20, 8))

    def grads(net, x):
        loss = lambda p: (net.apply(p, x) * cotangent).sum()  # noqa: E731
        return net.apply(params, x), jax.grad(loss)(params)

    (y, g), (y_ref, g_ref) = grads(conv, frames), grads(ref, frames.astype(jnp.float32) * FRAME_SCALE)
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


def test_relu_matches_nn_relu_in_value_and_gradient():
    x = jnp.array([-2.0, -0.0, 0.0, 1e-7, 3.0])
    np.testing.assert_array_equal(relu(x), nn.relu(x))
    grad = jax.grad(lambda v: (relu(v) * 2).sum())(x)
    np.testing.assert_array_equal(grad, jax.grad(lambda v: (nn.relu(v) * 2).sum())(x))


def test_scaled_gemm_conv_input_gradient_on_float_frames():
    """With input_scale on float frames the input still gets its gradient (scaled by it)."""
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 20, 20, 3)) * 255
    conv, ref = GemmConv(4, 4, 2, input_scale=FRAME_SCALE), nn.Conv(4, (4, 4), (2, 2), padding="VALID")
    params = ref.init(jax.random.PRNGKey(1), x)
    grad = jax.grad(lambda v: (conv.apply(params, v) ** 2).sum())(x)
    ref_grad = jax.grad(lambda v: (ref.apply(params, v * FRAME_SCALE) ** 2).sum())(x)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-6)
