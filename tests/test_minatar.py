"""MinAtar through gymnax behind jaxfer's env API: shapes, episode bookkeeping, jit and vmap."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfer import envs
from jaxfer.envs import minatar


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


def test_minatar_has_only_its_grid_observations():
    with pytest.raises(envs.EnvError, match="has the observations 'grid', 'grid_common'"):
        envs.make("minatar/Breakout", obs="pixels84")


# The module docstring's table: (game, native channel) -> common role. SpaceInvaders' direction maps
# (channels 2 and 3) are checked apart: they become trails behind the aliens.
DOCUMENTED = {
    "minatar/Breakout": ["player", "player_shot", "trail", "brick"],
    "minatar/Asterix": ["player", "enemy", "trail", "collectible"],
    "minatar/Freeway": ["player", "enemy", "trail", "trail", "trail", "trail", "trail"],
    "minatar/SpaceInvaders": ["player", "enemy", None, None, "player_shot", "enemy_shot"],
    "minatar/Seaquest": ["player", "trail", "player_shot", "trail", "enemy_shot", "enemy", "enemy", "gauge", "gauge",
                         "collectible"],
}


@pytest.mark.parametrize("env_id", sorted(DOCUMENTED))
def test_common_layout_maps_one_object_per_channel_as_documented(env_id):
    roles = DOCUMENTED[env_id]
    native = np.zeros((10, 10, len(roles)), np.float32)
    cells = {c: (c, (3 * c + 1) % 8 + 1) for c in range(len(roles))}  # one object per channel, off the edges
    for c, (y, x) in cells.items():
        native[y, x, c] = 1
    common = np.asarray(minatar.common_obs(native, env_id))
    assert common.shape == (10, 10, len(minatar.ROLES))
    expected = np.zeros_like(common)
    for c, role in enumerate(roles):
        if role is not None:
            expected[(*cells[c], minatar.ROLES.index(role))] = 1
    if env_id == "minatar/SpaceInvaders":  # moving left: came from x + 1; moving right: from x - 1
        (y2, x2), (y3, x3) = cells[2], cells[3]
        expected[y2, x2 + 1, minatar.ROLES.index("trail")] = 1
        expected[y3, x3 - 1, minatar.ROLES.index("trail")] = 1
    np.testing.assert_array_equal(common, expected)


def test_common_layout_env_gives_uint8_of_the_common_shape_for_every_game():
    for env_id in minatar.GAMES:
        env = envs.make(env_id, obs="grid_common")
        _, obs = jax.jit(env.reset)(jax.random.PRNGKey(0))
        assert env.obs_shape == obs.shape == (10, 10, len(minatar.ROLES))
        assert obs.dtype == np.uint8 and set(np.unique(obs)) <= {0, 255} and obs[..., 0].sum() > 0  # a player



def test_space_invaders_trails_stop_at_the_edge_instead_of_wrapping():
    native = np.zeros((10, 10, 6), np.float32)
    native[4, 0, 3] = native[4, 0, 1] = 1  # an alien at the left edge, moving right: it came from off the board
    native[5, 9, 2] = native[5, 9, 1] = 1  # one at the right edge moving left
    trail = np.asarray(minatar.common_obs(native, "minatar/SpaceInvaders"))[..., minatar.ROLES.index("trail")]
    assert trail.sum() == 0


@pytest.mark.parametrize("variant", sorted(minatar.FLIPPED))
def test_a_flipped_game_is_its_game_upside_down(variant):
    """Same key, same actions: the same rewards and ends, every observation's rows reversed, in both layouts."""
    game = minatar.base_game(variant)
    actions = jnp.asarray(np.random.default_rng(0).integers(0, envs.make(game).num_actions, 60), jnp.int32)

    def play(env_id, obs):
        env = envs.make(env_id, obs)

        def body(state, xs):
            state, o, r, d, _ = env.step(state, *xs)
            return state, (o, r, d)

        state, first = env.reset(jax.random.PRNGKey(3))
        _, (o, r, d) = jax.lax.scan(body, state, (actions, jax.random.split(jax.random.PRNGKey(4), 60)))
        return first, o, r, d

    for obs in ("grid", "grid_common"):
        first, o, r, d = jax.jit(lambda: play(game, obs))()
        first_f, o_f, r_f, d_f = jax.jit(lambda: play(variant, obs))()
        np.testing.assert_array_equal(first_f, first[::-1])
        np.testing.assert_array_equal(o_f, o[:, ::-1])
        np.testing.assert_array_equal(r_f, r)
        np.testing.assert_array_equal(d_f, d)
        assert np.any(o != o[:, ::-1])  # the flip shows
