"""Class activation maps of any conv layer of a jaxfer Q-network: Grad-CAM, Grad-CAM++, EigenCAM.

Grad-CAM (Selvaraju et al.): A = the named conv layer's activation, g = d q_c / d A via ``jax.grad``
for the chosen action c (default: the greedy one), w_k = mean_ij g_ijk, cam = ReLU(sum_k w_k A_k),
min-max scaled to [0, 1] per image and bilinearly resized to the input size. Grad-CAM++ weighs the
positive gradients by the closed-form alphas of Chattopadhay et al. (exponential-free form for
ReLU nets); EigenCAM (Muhammad & Yeasin) projects A on its first principal direction and needs
no gradient. ``cams`` handles a whole batch in one jitted, vmapped call.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxfer.errors import JaxferError
from jaxfer.networks.layers import layer_names

METHODS = ("gradcam", "gradcam++", "eigencam")


class GradCamError(JaxferError):
    """A layer or method the network does not have."""


def conv_layers(params) -> list[str]:
    return [name for name in layer_names(params) if name.startswith("conv")]


def activation_and_grad(net, params, obs, layer: str, action=None):
    """(A, d q_c / d A, c) for one observation; A is (h, w, k)."""
    index = int(layer.split("_")[1])
    _, sown = net.apply(params, obs[None], mutable=["activations"])
    activation = sown["activations"][f"{layer}_relu"][0][0]

    def q_of(a):
        return net.apply(params, obs[None], replace=(index, a[None]))[0]

    c = jnp.argmax(q_of(activation)) if action is None else action
    return activation, jax.grad(lambda a: q_of(a)[c])(activation), c


def _weights(method: str, a, g):
    if method == "gradcam":
        return g.mean(axis=(0, 1))
    g2, g3 = g**2, g**3
    alpha = g2 / jnp.where(g2 != 0, 2 * g2 + a.sum(axis=(0, 1)) * g3, 1.0)
    return jnp.sum(alpha * jax.nn.relu(g), axis=(0, 1))


def _eigen(a):
    flat = a.reshape(-1, a.shape[-1])
    _, _, vt = jnp.linalg.svd(flat, full_matrices=False)
    proj = flat @ vt[0]
    proj = proj * jnp.sign(proj[jnp.argmax(jnp.abs(proj))])  # the SVD's sign is arbitrary
    return proj.reshape(a.shape[:2])


def _normalise(cam, size):
    cam = jax.nn.relu(cam)
    lo, hi = cam.min(), cam.max()
    cam = jnp.where(hi > lo, (cam - lo) / jnp.where(hi > lo, hi - lo, 1.0), 0.0)
    return jnp.clip(jax.image.resize(cam, size, "bilinear"), 0.0, 1.0)


def cam(net, params, obs, layer: str, action=None, method: str = "gradcam", size=None):
    """The map of one observation, values in [0, 1], of shape ``size`` (default: obs.shape[:2])."""
    a, g, _ = activation_and_grad(net, params, obs, layer, action)
    raw = _eigen(a) if method == "eigencam" else jnp.einsum("hwk,k->hw", a, _weights(method, a, g))
    return _normalise(raw, size or obs.shape[:2])


def resolve_layer(params, layer: str | None, network: str = "this network") -> str:
    """The conv layer a CAM is taken of: ``layer``, or by default the last; anything else is one line naming
    the layers there are."""
    available = conv_layers(params)
    layer = layer or (available[-1] if available else None)
    if layer not in available:
        raise GradCamError(f"layer '{layer}' is not a conv layer of {network}; "
                           f"available: {', '.join(available) or 'none'}")
    return layer


def check_method(method: str) -> None:
    if method not in METHODS:
        raise GradCamError(f"unknown CAM method '{method}'; known: {', '.join(METHODS)}")


def cams(net, params, obs_batch, layer: str | None = None, actions=None, method: str = "gradcam",
         chunk: int | None = None, size: tuple[int, int] | None = None):
    """Maps for a batch (B, H, W, C) -> (B, H, W); ``layer`` defaults to the last conv layer.

    ``size`` resizes the maps straight from the layer's resolution (e.g. to compare a 10x10 MinAtar
    input's map at 84x84) rather than resizing twice. The batch runs in chunks of ``chunk``
    (default: the network's code path's, ``net.path``): XLA CPU runs conv nets slower per image at large batches.
    """
    layer = resolve_layer(params, layer)
    check_method(method)
    return _cams(net, params, obs_batch, actions, layer, method, chunk or net.path.map_batch_size(32),
                 None if size is None else tuple(size))


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 7))
def _cams(net, params, obs_batch, actions, layer, method, chunk, size):
    one = lambda o, a: cam(net, params, o, layer, a, method, size)  # noqa: E731
    if actions is None:
        return jax.lax.map(lambda o: one(o, None), obs_batch, batch_size=chunk)
    return jax.lax.map(lambda xs: one(*xs), (obs_batch, actions), batch_size=chunk)
