import jax.numpy as jnp
import numpy as np

from jaxfer.replay import uniform


def _batch(start, n):
    obs = jnp.arange(start, start + n, dtype=jnp.uint8)[:, None]
    return uniform.Transition(obs, jnp.arange(start, start + n), jnp.ones(n), jnp.zeros(n, bool), obs + 1)


def test_ring_buffer_wraps_and_counts():
    buf = uniform.init(5, (1,), jnp.uint8)
    buf = uniform.add(buf, _batch(0, 3))
    assert int(buf.size) == 3 and int(buf.pos) == 3
    buf = uniform.add(buf, _batch(3, 4))  # 7 written into 5 slots: 5 and 6 overwrite 0 and 1
    assert int(buf.size) == 5 and int(buf.pos) == 2
    np.testing.assert_array_equal(buf.data.action, [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(buf.data.next_obs[:, 0], [6, 7, 3, 4, 5])


def test_sample_only_valid_entries():
    import jax

    buf = uniform.add(uniform.init(100, (1,), jnp.uint8), _batch(10, 4))
    batch = uniform.sample(buf, jax.random.PRNGKey(0), 256)
    assert set(np.asarray(batch.action).tolist()) == {10, 11, 12, 13}
