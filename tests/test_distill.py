"""Policy distillation: the KL formula, and a student that gets closer to the teacher on held-out states."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfer import envs
from jaxfer.agents import distill
from jaxfer.networks.q_nets import make_network


def test_kl_by_hand():
    q_t, q_s = jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 0.0]])
    p = np.exp([10.0, 0.0]) / np.exp([10.0, 0.0]).sum()  # softmax(q_T / 0.1); the student is not divided by tau
    expected = np.sum(p * (np.log(p) - np.log([0.5, 0.5])))
    np.testing.assert_allclose(distill.kl_loss(q_t, q_s, 0.1), expected, rtol=1e-5)
    assert float(distill.kl_loss(q_t, q_t * 10, 0.1)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.optimised
@pytest.mark.parametrize("schedule", ["fixed", "varying"])
def test_distillation_lowers_held_out_kl(schedule):
    """Budget: 2,560 teacher states (one pass "fixed", five "varying"); threshold: the held-out KL at
    tau 0.1 drops by at least a quarter (measured: 1.08 -> 0.60 fixed)."""
    env = envs.make("catch/v0")
    net = make_network("catch_cnn", env.num_actions)
    obs = jnp.zeros((1, *env.obs_shape), jnp.uint8)
    teacher = net.init(jax.random.PRNGKey(0), obs)
    teacher = jax.tree.map(lambda x: x * 3.0, teacher)  # sharper Q-differences than a plain init
    student = net.init(jax.random.PRNGKey(1), obs)
    states, q = distill.collect(net.apply, teacher, env, 3072, jax.random.PRNGKey(2))
    train, held_out = slice(0, 2560), slice(2560, None)

    def held_out_kl(params):
        return float(distill.kl_loss(q[held_out], net.apply(params, states[held_out]), 0.1))

    before = held_out_kl(student)
    trained, losses = distill.distill(net.apply, student, states[train], q[train], jax.random.PRNGKey(3), schedule)
    assert losses.shape == (len(distill.SCHEDULES[schedule]) * 80,)
    assert held_out_kl(trained) < 0.75 * before, (before, held_out_kl(trained))
