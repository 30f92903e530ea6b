"""Actor-critic networks for A2C: conv trunk, a dense or LSTM core, one head for policy and value.

Weighted layers are named in forward order as ``jaxfer.networks.layers.layer_names`` expects: ``conv_i``, then
``dense_0`` (the core: a Dense layer, or the LSTM cell whose gate kernels it holds), then ``head``:
ONE dense layer with ``num_actions + 1`` outputs (the actor's logits, then the critic's value). A
single head keeps transfer's slices meaningful: "all but the head" is trunk + core, and a new action
set re-initialises actor and critic together (their shapes differ).

Networks (``NETWORKS``):
- ``ea3c``: E-A3C (Joo & Kim 2019; rl_a3c_pytorch's A3C-LSTM numbers): 80x80 input, convs 32@5x5 pad 2,
  32@5x5 pad 1, 64@4x4 pad 1, 64@3x3 pad 1 (stride 1), each followed by 2x2 max-pool and ReLU, core 512;
- ``nature_ac``: the Nature-CNN trunk (Mnih et al. 2015) with a 512 core (A2C's usual Atari network);
- ``minatar_ac``: the MinAtar baseline trunk (one 16@3x3 conv) with a 128 core, for Catch and MinAtar;
- ``mlp_ac``: no conv, a 256 core on the flattened frame: dense-only, so seeds vmap at any count on a CPU
  (as the Q-nets' ``mlp``), and the multiply-adds of an actor MLP plus a critic MLP of 128 each (PPO's usual).

``width`` multiplies every conv's channels (E-A3C's unspecified "expanded channels"); ``core`` is
"lstm" (memory carried per env, reset where an episode starts) or "dense" (feed-forward: give it
stacked frames). Convs and max-pools are the code path's (``path``): flax's by default, the XLA-CPU
kernels on that path (``jaxfer.code_path``).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxfer.code_path import PLAIN, CodePath
from jaxfer.networks.layers import ConvSpec, conv_layers, conv_trunk

EA3C_CONVS = (ConvSpec(32, 5, 1, 2, 2), ConvSpec(32, 5, 1, 1, 2), ConvSpec(64, 4, 1, 1, 2), ConvSpec(64, 3, 1, 1, 2))
NATURE_CONVS = (ConvSpec(32, 8, 4), ConvSpec(64, 4, 2), ConvSpec(64, 3, 1))
MINATAR_CONVS = (ConvSpec(16, 3, 1),)
CORES = ("lstm", "dense")


def _head_init(num_actions: int):
    """Orthogonal columns: small for the logits (a near-uniform first policy), unit for the value."""
    def init(key, shape, dtype=jnp.float32):
        k_pi, k_v = jax.random.split(key)
        pi = nn.initializers.orthogonal(0.01)(k_pi, (shape[0], num_actions), dtype)
        return jnp.concatenate([pi, nn.initializers.orthogonal(1.0)(k_v, (shape[0], 1), dtype)], -1)
    return init


class ActorCritic(nn.Module):
    """``unroll(memory, obs (T, B, ...), first (T, B)) -> (memory, logits (T, B, A), value (T, B))``.

    The trunk runs on all T*B frames at once (no conv inside a time loop, slow on XLA CPU); only the
    LSTM steps through time. ``__call__(obs (B, ...), replace=None) -> logits`` is the single-frame view
    Grad-CAM uses (``jaxfer.dptl.gradcam``), from a fresh memory: conv activations are sown as
    ``activations/conv_i_relu`` and ``replace=(i, a)`` continues from ``a`` in place of conv_i's.
    """

    num_actions: int
    convs: Sequence[ConvSpec]
    hidden: int
    core: str = "dense"
    width: float = 1.0
    path: CodePath = PLAIN

    def setup(self):
        for i, conv in enumerate(conv_layers(self.convs, self.path, self.width)):
            setattr(self, f"conv_{i}", conv)
        self.dense_0 = nn.OptimizedLSTMCell(self.hidden) if self.core == "lstm" else nn.Dense(self.hidden)
        self.head = nn.Dense(self.num_actions + 1, kernel_init=_head_init(self.num_actions))

    def initial_memory(self, batch: int):
        """Zeros: the LSTM's (c, h) at an episode's start; () for a dense core."""
        if self.core == "dense":
            return ()
        return (jnp.zeros((batch, self.hidden)), jnp.zeros((batch, self.hidden)))

    def torso(self, obs: jax.Array, replace=None) -> jax.Array:
        """(..., H, W, C) uint8 frames -> (..., F) features."""
        layers = [getattr(self, f"conv_{i}") for i in range(len(self.convs))]
        x = conv_trunk(self, layers, self.convs, obs, nn.relu, self.path, replace)
        return x.reshape(x.shape[:-3] + (-1,))

    def unroll(self, memory, obs: jax.Array, first: jax.Array):
        return self._core_and_heads(memory, self.torso(obs), first)

    def __call__(self, obs: jax.Array, replace=None) -> jax.Array:
        features = self.torso(obs, replace)[None]
        return self._core_and_heads(self.initial_memory(obs.shape[0]), features,
                                    jnp.ones(features.shape[:2], bool))[1][0]

    def _core_and_heads(self, memory, features: jax.Array, first: jax.Array):
        """(T, B, F) features -> (memory, logits, value); the LSTM resets its memory where ``first``."""
        if self.core == "dense":
            hidden = nn.relu(self.dense_0(features))
        else:  # T is small (the rollout length): a Python loop, unrolled
            steps = []
            for t in range(features.shape[0]):
                memory = jax.tree.map(lambda m: jnp.where(first[t][:, None], 0.0, m), memory)
                memory, h = self.dense_0(memory, features[t])
                steps.append(h)
            hidden = jnp.stack(steps)
        out = self.head(hidden)
        return memory, out[..., :-1], out[..., -1]


NETWORKS = {
    "ea3c": (EA3C_CONVS, 512),
    "nature_ac": (NATURE_CONVS, 512),
    "minatar_ac": (MINATAR_CONVS, 128),
    "mlp_ac": ((), 256),
}


def make_network(name: str, num_actions: int, core: str = "dense", width: float = 1.0,
                 path: CodePath = PLAIN) -> ActorCritic:
    if name not in NETWORKS:
        raise ValueError(f"unknown actor-critic network '{name}'; known: {', '.join(NETWORKS)}")
    convs, hidden = NETWORKS[name]
    return ActorCritic(num_actions, convs, hidden, core, width, path)


def from_config(cfg, num_actions: int, path: CodePath = PLAIN) -> ActorCritic:
    """The network an A2C run of ``cfg`` trains on ``path`` (also what Grad-CAM needs to load its params)."""
    return make_network(cfg.network, num_actions, cfg.core, cfg.width, path)
