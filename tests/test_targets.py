"""The TD errors and returns of jaxfer.agents.targets against hand-computed numbers, one transition at a
time under jit and without (chex.variants), batched with vmap, and with gradients only through the
predicted value."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfer.agents import targets

Q_TM1 = jnp.array([1.0, 2.0, 3.0])
Q_T = jnp.array([0.5, 4.0, -1.0])
SELECTOR = jnp.array([9.0, 0.0, 1.0])  # the online net prefers action 0 at s'


class TestOneTransition(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_q_learning(self):
        # r + discount * max q_t - q_tm1[a] = 1 + 0.5 * 4 - 2
        td = self.variant(targets.q_learning)(Q_TM1, jnp.int32(1), jnp.float32(1.0), jnp.float32(0.5), Q_T)
        np.testing.assert_allclose(td, 1.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_double_q_learning_values_the_selected_action(self):
        # action 0 selected online, valued 0.5 by the target net: 1 + 0.5 * 0.5 - 3
        td = self.variant(targets.double_q_learning)(Q_TM1, jnp.int32(2), jnp.float32(1.0), jnp.float32(0.5),
                                                     Q_T, SELECTOR)
        np.testing.assert_allclose(td, -1.75)

    @chex.variants(with_jit=True, without_jit=True)
    def test_qv_learning_and_v_learning(self):
        td_q = self.variant(targets.qv_learning)(Q_TM1, jnp.int32(0), jnp.float32(2.0), jnp.float32(0.9),
                                                 jnp.float32(10.0))
        np.testing.assert_allclose(td_q, 2.0 + 9.0 - 1.0)
        td_v = self.variant(targets.v_learning)(jnp.float32(4.0), jnp.float32(2.0), jnp.float32(0.9),
                                                jnp.float32(10.0))
        np.testing.assert_allclose(td_v, 2.0 + 9.0 - 4.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_qv_max(self):
        td = self.variant(targets.qv_max)(jnp.float32(1.0), jnp.float32(0.0), jnp.float32(0.5), Q_T)
        np.testing.assert_allclose(td, 0.5 * 4.0 - 1.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_terminal_steps_bootstrap_nothing(self):
        td = self.variant(targets.q_learning)(Q_TM1, jnp.int32(0), jnp.float32(1.0), jnp.float32(0.0), Q_T * 1e6)
        np.testing.assert_allclose(td, 0.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_discounted_returns_with_a_done_cut(self):
        # discount 0 at step 1 (the episode ends there): G2 = 2 + .5 * 10 = 7, G1 = 0 + 0 * 7 = 0, G0 = 1 + .5 * 0
        got = self.variant(targets.discounted_returns)(jnp.array([1.0, 0.0, 2.0]), jnp.array([0.5, 0.0, 0.5]),
                                                       jnp.float32(10.0))
        np.testing.assert_allclose(got, [1.0, 0.0, 7.0])


def test_batched_with_vmap_equals_one_at_a_time():
    rng = np.random.default_rng(0)
    q_tm1, q_t, sel = (jnp.asarray(rng.normal(size=(6, 4)), jnp.float32) for _ in range(3))
    a = jnp.asarray(rng.integers(0, 4, 6), jnp.int32)
    r, d = jnp.asarray(rng.normal(size=6), jnp.float32), jnp.asarray(rng.uniform(size=6), jnp.float32)
    batched = jax.jit(jax.vmap(targets.double_q_learning))(q_tm1, a, r, d, q_t, sel)
    for i in range(6):
        expected = r[i] + d[i] * q_t[i, int(sel[i].argmax())] - q_tm1[i, a[i]]
        np.testing.assert_allclose(batched[i], expected, rtol=1e-6)
    # returns of a (T, B) rollout: one trajectory per column
    rewards, discounts, boot = jnp.ones((3, 2)), jnp.full((3, 2), 0.5), jnp.array([0.0, 8.0])
    got = jax.vmap(targets.discounted_returns, in_axes=(1, 1, 0), out_axes=1)(rewards, discounts, boot)
    np.testing.assert_allclose(got, [[1.75, 2.75], [1.5, 3.5], [1.0, 5.0]])


def test_gradients_flow_only_through_the_predicted_value():
    grads = jax.grad(lambda q_tm1, q_t: targets.q_learning(q_tm1, jnp.int32(1), 1.0, 0.5, q_t), (0, 1))(Q_TM1, Q_T)
    np.testing.assert_array_equal(grads[0], [0.0, -1.0, 0.0])
    np.testing.assert_array_equal(grads[1], [0.0, 0.0, 0.0])


def test_shapes_are_checked():
    with pytest.raises(AssertionError):
        targets.q_learning(Q_TM1[None], jnp.int32(1), 1.0, 0.5, Q_T)  # a batch passed without vmap
