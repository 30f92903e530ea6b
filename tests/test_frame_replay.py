"""The frame-once replay rebuilds exactly the observed stacks, across episode starts and ring wrap."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfer.replay import stacked_frames

K, ENVS, STEPS, ROWS = 4, 3, 60, 16


def simulate(fill: str, seed: int = 0):
    """Observed K-stacks of a random stream of frames with random episode starts (per env)."""
    rng = np.random.default_rng(seed)
    obs, firsts, stack = [], [], None
    for t in range(STEPS):
        frame = rng.integers(1, 256, (ENVS, 2, 2), dtype=np.uint8)  # never 0, so zero fill shows
        first = rng.random(ENVS) < 0.15 if t else np.ones(ENVS, bool)
        pad = frame if fill == "repeat" else np.zeros_like(frame)
        fresh = np.stack([pad] * (K - 1) + [frame], -1)
        stack = fresh if stack is None else np.where(first[:, None, None, None], fresh,
                                                     np.concatenate([stack[..., 1:], frame[..., None]], -1))
        obs.append(stack)
        firsts.append(first)
    return np.array(obs), np.array(firsts)


@pytest.mark.parametrize("fill", stacked_frames.FILLS)
def test_rebuilt_stacks_equal_the_observed_ones(fill):
    obs, firsts = simulate(fill)
    buf = stacked_frames.init(ROWS * ENVS, ENVS, obs.shape[2:], jnp.uint8)
    checked = 0
    for t in range(STEPS):
        zeros = jnp.zeros((1, ENVS))
        buf = stacked_frames.add(buf, obs[t : t + 1], zeros.astype(jnp.int32), zeros, zeros.astype(bool),
                               firsts[t : t + 1])
        size = min(t + 1, ROWS)
        for s in range(t + 1 - size + K - 1, t + 1):  # steps whose whole history is still stored
            rows = jnp.full(ENVS, s % ROWS)
            got = stacked_frames.stacks(buf, rows, jnp.arange(ENVS), K, fill)
            np.testing.assert_array_equal(got, obs[s], err_msg=f"step {s} after {t}")
            checked += 1
    assert checked > STEPS * 5
    assert firsts[1:].sum() > 5  # episode starts inside the stream were exercised


@pytest.mark.parametrize("fill", stacked_frames.FILLS)
def test_samples_are_observed_transitions(fill):
    obs, firsts = simulate(fill, seed=1)
    buf = stacked_frames.init(ROWS * ENVS, ENVS, obs.shape[2:], jnp.uint8)
    zeros = jnp.zeros((STEPS, ENVS))
    buf = stacked_frames.add(buf, obs, zeros.astype(jnp.int32), zeros, zeros.astype(bool), firsts)
    batch = stacked_frames.sample(buf, jax.random.PRNGKey(0), 256, K, fill)
    window = range(STEPS - ROWS + K - 1, STEPS - 1)  # sampleable: history stored and next obs written
    pairs = {(obs[s, e].tobytes(), obs[s + 1, e].tobytes()) for s in window for e in range(ENVS)}
    got = {(o.tobytes(), n.tobytes()) for o, n in zip(np.asarray(batch.obs), np.asarray(batch.next_obs))}
    assert got <= pairs and len(got) > len(pairs) // 2
