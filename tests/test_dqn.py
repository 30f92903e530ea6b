"""DQN / Double DQN: targets, freezing, determinism across seed layouts (over devices: test_devices.py)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import train_epochs

from jaxfer import agents, config, envs
from jaxfer.agents import dqn, value_based
from jaxfer.code_path import CodePath
from jaxfer.networks.layers import layer_names
from jaxfer.networks.q_nets import make_network
from jaxfer.replay import uniform

# A short run: 2 epochs of 200 env steps, learning from step 100.
SHORT = ["total_steps=400", "epoch_steps=200", "learning_starts=100", "buffer_size=500", "target_update=20",
         "eval_envs=4", "eval_steps=12"]


def _run(overrides, num_seeds, seed=0, freeze=None, params=None):
    cfg = config.load(None, SHORT + overrides + [f"seeds={num_seeds}", f"seed={seed}"])
    return train_epochs(cfg, None, freeze, params)


def test_layer_names_in_forward_order_even_after_tree_ops():
    net = make_network("nature_cnn", 6)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 84, 84, 4), jnp.uint8))
    expected = ["conv_0", "conv_1", "conv_2", "dense_0", "head"]
    assert set(params) == {"params"}  # sown activations stay out of the parameter tree
    assert layer_names(params) == expected
    assert layer_names(jax.tree.map(lambda x: x, params)) == expected


@pytest.mark.parametrize("impl", ["gemm", "xla"])
def test_conv_impls_agree(impl):
    x = jax.random.randint(jax.random.PRNGKey(1), (3, 84, 84, 4), 0, 256).astype(jnp.uint8)
    ref = make_network("nature_cnn", 5)
    params = ref.init(jax.random.PRNGKey(0), x)
    cpu_tuned = make_network("nature_cnn", 5, CodePath(True, impl))
    np.testing.assert_allclose(cpu_tuned.apply(params, x), ref.apply(params, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("double", [False, True])
def test_td_loss_matches_hand_computed_targets(double):
    cfg = config.load(None, [f"double={str(double).lower()}", "gamma=0.5"])

    class TableNet:  # Q(s) = params[s]: a lookup table makes every target checkable by hand
        @staticmethod
        def apply(params, obs):
            return params[obs[:, 0]]

    online = jnp.array([[1.0, 2.0], [3.0, 0.0], [0.0, 0.0]])
    target = jnp.array([[0.0, 0.0], [10.0, 20.0], [5.0, 7.0]])
    batch = uniform.Transition(obs=jnp.array([[0], [0]]), action=jnp.array([1, 0]), reward=jnp.array([1.0, 2.0]),
                              done=jnp.array([0.0, 1.0]), next_obs=jnp.array([[1], [2]]))
    # next state 1: DQN bootstraps max target = 20; Double DQN takes online argmax (action 0) -> target 10.
    y0 = 1.0 + 0.5 * (10.0 if double else 20.0)
    y1 = 2.0  # terminal
    q0, q1 = 2.0, 1.0
    expected = np.mean([0.5 * 1.0 + (abs(y0 - q0) - 1.0), 0.5 * (y1 - q1) ** 2])  # Huber, delta 1
    np.testing.assert_allclose(dqn.td_loss(TableNet, cfg, online, target, batch), expected, rtol=1e-6)


def test_frozen_layers_get_exactly_zero_updates():
    cfg = config.load(None, SHORT)
    env = envs.make(cfg.env, cfg.obs)
    params = agents.ALGORITHMS[cfg.agent](cfg, env.num_actions, CodePath.from_config(cfg)).init_params(
        jax.random.PRNGKey(7), jnp.zeros((1, *env.obs_shape), env.obs_dtype))
    freeze = {"params": {name: jax.tree.map(lambda _: name.startswith("conv"), layer)
                         for name, layer in params["params"].items()}}
    state, history = _run([], 2, freeze=freeze, params=params)
    assert history[-1]["loss"].min() > 0  # it did learn something
    for name in layer_names(params):
        for leaf in ("kernel", "bias"):
            before, after = params["params"][name][leaf], state.agent.params["params"][name][leaf]
            same = [np.array_equal(before, after[s]) for s in range(2)]
            assert same == [name.startswith("conv")] * 2, name


@pytest.mark.parametrize("tuning, learning_starts, synced", [("accelerator", 84, True), ("cpu", 88, False)])
def test_the_target_syncs_on_the_update_count_all_seeds_share(tuning, learning_starts, synced):
    """400 env steps of 4 envs: updates from the vector step reaching learning_starts, 80 of them from
    step 84 (the target copied at the last, target_update 20), 79 from step 88."""
    state, _ = _run([f"learning_starts={learning_starts}", f"tuning={tuning}", "network=mlp"], 2)  # no conv: XLA
    # CPU's own conv op (the accelerator path's) is slow to compile
    agent = jax.tree.map(lambda x: np.asarray(x)[:2], state.agent)
    expected = 80 if synced else 79
    assert (agent.updates == expected).all()
    assert int(value_based.updates_done(np.int32(400), 4, learning_starts)) == expected
    same = [np.array_equal(p, t) for p, t in zip(jax.tree.leaves(agent.params), jax.tree.leaves(agent.target_params))]
    assert all(same) if synced else not any(same)


def test_same_seed_twice_is_identical():
    _, a = _run([], 2)
    _, b = _run([], 2)
    for ma, mb in zip(a, b):
        for k in ma:
            np.testing.assert_array_equal(ma[k], mb[k])


@functools.cache
def _alone(i):
    return _run([], 1, seed=i)[1]


@pytest.mark.parametrize("strategy", ["vmap", "sequential"])
def test_seed_i_of_a_batch_matches_seed_i_alone(strategy):
    _, batch = _run([f"strategy={strategy}"], 3)
    for i in range(3):
        for mb, ma in zip(batch, _alone(i)):
            for k in ("train_return", "eval_return", "loss", "env_steps"):
                np.testing.assert_allclose(mb[k][i], ma[k][0], rtol=1e-4, atol=1e-5, err_msg=f"seed {i} {k}")
