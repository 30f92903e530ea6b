"""The XLA-CPU update wrappers: ``unbatched_single_seed`` must not change what a vmapped function computes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfer.xla_cpu import updates


def step(flag, x, shared):
    """A cond on a per-seed flag with a matmul, like the DQN update; ``shared`` is not batched."""
    return jax.lax.cond(flag, lambda x: (x @ shared, x.sum()), lambda x: (x, jnp.float32(0)), x)


@pytest.mark.parametrize("num_seeds", [1, 3])
def test_unbatched_single_seed_matches_vmap(num_seeds):
    flags = jnp.arange(num_seeds) % 2 == 0
    xs = jax.random.normal(jax.random.PRNGKey(0), (num_seeds, 4, 4))
    shared = jax.random.normal(jax.random.PRNGKey(1), (4, 4))
    run = jax.vmap(updates.unbatched_single_seed(step), in_axes=(0, 0, None))
    want = jax.vmap(step, in_axes=(0, 0, None))(flags, xs, shared)
    got = jax.jit(run)(flags, xs, shared)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-6)
    unbatched = updates.unbatched_single_seed(step)(flags[0], xs[0], shared)  # no vmap: fn itself
    np.testing.assert_allclose(unbatched[0], got[0][0], rtol=1e-6)
