"""MinAtar through gymnax behind jaxfer's env API: shapes, episode bookkeeping, jit and vmap."""
import jax
import numpy as np
import pytest

from jaxfer import envs


@pytest.mark.parametrize("env_id, channels, actions", [("minatar/Breakout", 4, 3), ("minatar/Seaquest", 10, 6)])
def test_shapes_and_actions(env_id, channels, actions):
    env = envs.make(env_id)
    state, obs = jax.jit(env.reset)(jax.random.PRNGKey(0))
    assert env.obs_shape == (10, 10, channels) and env.num_actions == actions
    assert obs.shape == env.obs_shape and obs.dtype == np.uint8 and set(np.unique(obs)) <= {0, 255}


def test_episode_return_is_the_sum_of_rewards_under_vmap():
    env = envs.make("minatar/Breakout")
    n, steps = 4, 300
    state, obs = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), n))

    def body(state, key):
        k_act, k_env = jax.random.split(key)
        action = jax.random.randint(k_act, (n,), 0, env.num_actions)
        state, obs, reward, done, info = jax.vmap(env.step)(state, action, jax.random.split(k_env, n))
        return state, (reward, done, info["episode_return"])

    _, (reward, done, ep_return) = jax.jit(
        lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.PRNGKey(1), steps)))(state)
    reward, done, ep_return = map(np.asarray, (reward, done, ep_return))
    assert done.any(), "random play should lose some Breakout episodes in 300 steps"
    for i in range(n):
        running = 0.0
        for t in range(steps):
            running += reward[t, i]
            if done[t, i]:
                assert ep_return[t, i] == pytest.approx(running)
                running = 0.0
            else:
                assert ep_return[t, i] == 0.0


def test_minatar_has_only_the_grid_observation():
    with pytest.raises(envs.EnvError, match="only the native 'grid'"):
        envs.make("minatar/Breakout", obs="pixels84")
