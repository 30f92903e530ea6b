"""Layer surgery: copied layers equal the source, the rest equal a fresh init, errors name the layer."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfer.networks.layers import layer_names
from jaxfer.networks.q_nets import make_network
from jaxfer.transfer import surgery


def _init(name, actions, seed, shape=(21, 21, 4)):
    return make_network(name, actions).init(jax.random.PRNGKey(seed), jnp.zeros((1, *shape), jnp.uint8))


def _equal(a, b):
    return all(jax.tree.leaves(jax.tree.map(np.array_equal, a, b)))


@pytest.mark.parametrize("mode, n, copied", [
    ("scratch", None, []),
    ("fine_tune", None, ["conv_0", "conv_1", "dense_0"]),
    ("only_head", None, ["conv_0", "conv_1", "dense_0"]),
    ("first_n", 2, ["conv_0", "conv_1"]),
    ("last_n", 1, ["head"]),
    ("first_n", 4, ["conv_0", "conv_1", "dense_0", "head"]),
])
def test_copied_layers_equal_source_others_equal_fresh(mode, n, copied):
    source, fresh = _init("catch_cnn", 3, 0), _init("catch_cnn", 3, 1)
    params, freeze = surgery.apply(mode, source, fresh, n=n, frozen=True)
    for name in layer_names(fresh):
        ref = source if name in copied else fresh
        assert _equal(params["params"][name], ref["params"][name]), name
    if mode in ("scratch", "fine_tune"):
        assert freeze is None
    else:
        frozen = {k for k, v in freeze["params"].items() if all(jax.tree.leaves(v))}
        assert frozen == set(copied)


def test_head_is_reinitialised_when_action_sets_differ():
    source, fresh = _init("catch_cnn", 3, 0), _init("catch_cnn", 6, 1)
    params, _ = surgery.apply("first_n", source, fresh, n=4)
    assert _equal(params["params"]["head"], fresh["params"]["head"])
    assert _equal(params["params"]["dense_0"], source["params"]["dense_0"])


def test_errors_name_the_problem():
    source = _init("catch_cnn", 3, 0)
    with pytest.raises(surgery.TransferError, match="unknown transfer mode 'half'"):
        surgery.apply("half", source, source)
    with pytest.raises(surgery.TransferError, match="1 <= n <= 4"):
        surgery.apply("first_n", source, source, n=5)
    other = _init("catch_cnn", 3, 0, shape=(21, 21, 2))  # 2 input channels instead of 4
    with pytest.raises(surgery.TransferError, match="layer 'conv_0' does not fit"):
        surgery.apply("fine_tune", other, source)
    with pytest.raises(surgery.TransferError, match="layer 'conv_0' is not in the source network"):
        surgery.apply("first_n", _init("mlp", 3, 0), source, n=1)
