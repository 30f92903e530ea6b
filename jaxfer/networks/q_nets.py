"""Q-networks: one conv trunk + dense layers + linear head class, and the named networks built from it."""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax

from jaxfer.code_path import PLAIN, CodePath
from jaxfer.networks.layers import ConvSpec, conv_layers, conv_trunk


class ConvQNet(nn.Module):
    """Conv trunk + dense layers + linear head; one class serves every Q-network here. Its convs, their
    ReLUs and pools are the code path's (``path``): plain XLA unless given the XLA-CPU one; the parameters
    are the same on both."""

    num_actions: int
    convs: Sequence[ConvSpec]
    dense: Sequence[int]
    path: CodePath = PLAIN

    @nn.compact
    def __call__(self, obs: jax.Array, replace: tuple[int, jax.Array] | None = None) -> jax.Array:
        """Q-values of raw frames; ``replace`` as ``jaxfer.networks.layers.conv_trunk``'s (Grad-CAM)."""
        x = conv_trunk(self, conv_layers(self.convs, self.path, named=True), self.convs, obs, self.path.relu,
                       self.path, replace)
        x = x.reshape(x.shape[:-3] + (-1,))
        for i, features in enumerate(self.dense):
            x = nn.relu(nn.Dense(features, name=f"dense_{i}")(x))  # as ActorCritic's: see CodePath.relu
        return nn.Dense(self.num_actions, name="head")(x)


NETWORKS: dict[str, Callable[[int], nn.Module]] = {
    # Mnih et al. 2015, for 84x84x4 frames.
    "nature_cnn": lambda n: ConvQNet(n, convs=(ConvSpec(32, 8, 4), ConvSpec(64, 4, 2), ConvSpec(64, 3, 1)),
                                     dense=(512,)),
    # For the native 21x21x4 Catch grid: strided convs, much faster than a stride-1 first conv and
    # still learning Catch (docs/performance.md).
    "catch_cnn": lambda n: ConvQNet(n, convs=(ConvSpec(16, 3, 2), ConvSpec(32, 3, 2)), dense=(64,)),
    # The MinAtar baseline network (Young & Tian 2019): one 3x3 conv, 128 hidden units.
    "minatar_cnn": lambda n: ConvQNet(n, convs=(ConvSpec(16, 3, 1),), dense=(128,)),
    # No convolution at all: the fastest option for vmapped seeds on a CPU.
    "mlp": lambda n: ConvQNet(n, convs=(), dense=(256,)),
    # Bélignon's segmentation-pretrained Double DQN: the FCN encoder fcn_f16-k3_s2_f32-k3_f32-k3_s2
    # (conv_0..conv_2 with their max-pools, jaxfer.segment.fcn), one more conv (64@3x3, as Nature's
    # last), dense 512, head. "SAME" convs, so MinAtar's 10x10 fits (10 -> 5 -> 2 after the pools).
    "seg_ddqn": lambda n: ConvQNet(n, convs=(ConvSpec(16, 3, 1, "SAME", 2), ConvSpec(32, 3, 1, "SAME"),
                                             ConvSpec(32, 3, 1, "SAME", 2), ConvSpec(64, 3, 1, "SAME")), dense=(512,)),
}


def make_network(name: str, num_actions: int, path: CodePath = PLAIN) -> nn.Module:
    """``NETWORKS[name]`` on the code path ``path`` (a run's: ``CodePath.from_config``)."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network '{name}'; known: {', '.join(NETWORKS)}")
    return NETWORKS[name](num_actions).clone(path=path)
