"""Frame collection for DPTL: what is played, in which order, and the on-disk cache."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfer import envs
from jaxfer.dptl import frames
from jaxfer.networks.q_nets import make_network


def test_one_catch_game_in_order():
    """Catch's ball falls one row per step from row 5 (after the automatic no-op) and the game
    ends when it reaches the paddle's row 16: 11 observations, the ball on row 5 + t in the newest
    frame of the stack, and the earlier frames of the stack are the previous observations."""
    obs = frames.episode(envs.make("catch/v0", "grid"), frames.random_policy(3), max_steps=50, seed=1)
    assert obs.shape == (11, 21, 21, 4) and obs.dtype == np.uint8
    for t, o in enumerate(obs):
        assert np.flatnonzero(o[:16, :, -1].max(axis=1)).tolist() == [5 + t]
    np.testing.assert_array_equal(obs[1:, ..., :-1], obs[:-1, ..., 1:])


def test_rollout_marks_game_ends_and_max_steps_caps_an_episode():
    env = envs.make("catch/v1", "grid")  # v1's games end one row earlier: 10 steps
    seen, ends = frames.rollout(env, 25, 3, 0, frames.random_policy(3))
    assert seen.shape == (25, 3, 21, 21, 4) and ends.shape == (25, 3)
    assert np.flatnonzero(ends[:, 0]).tolist() == [9, 19]
    assert len(frames.episode(env, frames.random_policy(3), max_steps=4)) == 4


def test_collect_caches_and_does_not_play_again(tmp_path, monkeypatch):
    first = frames.collect("catch/v2", "grid", n=20, seed=3, cache_dir=tmp_path)
    assert first.shape == (20, 21, 21, 4) and first.dtype == np.uint8
    cached = tmp_path / "catch_v2__grid__n20__seed3__random.npz"
    assert cached.exists() and len(list(tmp_path.iterdir())) == 1  # no temp file left behind

    def no_play(*args, **kwargs):
        raise AssertionError("the cache was not used: the env was stepped again")

    monkeypatch.setattr(frames, "rollout", no_play)
    np.testing.assert_array_equal(frames.collect("catch/v2", "grid", n=20, seed=3, cache_dir=tmp_path), first)
    with pytest.raises(AssertionError, match="cache was not used"):  # another key is another file
        frames.collect("catch/v2", "grid", n=20, seed=4, cache_dir=tmp_path)
    monkeypatch.undo()
    other = frames.collect("catch/v2", "grid", n=20, seed=4, cache_dir=tmp_path)
    assert not np.array_equal(other, first)


def test_greedy_policy_plays_argmax_and_is_keyed_by_weights(tmp_path):
    env = envs.make("catch/v0", "grid")
    net = make_network("catch_cnn", 3)
    params = [net.init(jax.random.PRNGKey(i), jnp.zeros((1, 21, 21, 4), jnp.uint8)) for i in range(2)]
    policies = [frames.greedy_policy(net, p) for p in params]
    assert policies[0].tag != policies[1].tag and policies[0].tag == frames.greedy_policy(net, params[0]).tag
    obs = frames.collect("catch/v0", "grid", n=16, policy=policies[0], cache_dir=tmp_path)
    assert (tmp_path / f"catch_v0__grid__n16__seed0__{policies[0].tag}.npz").exists()
    # The frames are the games the greedy agent played: each step's paddle follows argmax Q.
    seen, _ = frames.rollout(env, 2, frames.NUM_ENVS, 0, policies[0])
    np.testing.assert_array_equal(obs[: frames.NUM_ENVS], seen[0])
    actions = np.asarray(net.apply(params[0], seen[0]).argmax(-1))
    paddle = lambda o: np.flatnonzero(o[16, :, -1]).mean()  # noqa: E731
    moves = {0: -2, 1: 2, 2: 0}  # Catch: left, right, no-op (no move at a wall)
    for e in range(frames.NUM_ENVS):
        before, after = paddle(seen[0, e]), paddle(seen[1, e])
        assert after - before in (moves[int(actions[e])], 0), (e, actions[e], before, after)


def test_screen_of_stacks_and_of_object_channels():
    catch = np.zeros((2, 5, 5, 4), np.uint8)
    catch[..., -1] = 255
    catch[..., 0] = 128
    np.testing.assert_array_equal(frames.screen(catch, "catch/v0", "grid"), np.ones((2, 5, 5)))
    minatar = np.zeros((5, 5, 3), np.uint8)
    minatar[0, 0, 1] = minatar[2, 2, 0] = 255
    want = np.zeros((5, 5))
    want[0, 0] = want[2, 2] = 1.0
    np.testing.assert_array_equal(frames.screen(minatar, "minatar/Breakout", "grid"), want)
    rgb_stack = np.zeros((4, 4, 6), np.uint8)  # two RGB frames, oldest first
    rgb_stack[..., 3:] = (255, 0, 0)
    np.testing.assert_allclose(frames.screen(rgb_stack, "atari/Pong", "ea3c_stack4"), np.full((4, 4), 0.299), rtol=1e-6)


def test_atari_frames_through_the_pool(tmp_path):
    obs = frames.collect("atari/Pong", "nature", n=12, cache_dir=tmp_path)
    assert obs.shape == (12, 84, 84, 4) and obs.dtype == np.uint8
    assert obs[-1].std() > 0  # a picture, not a blank
    np.testing.assert_array_equal(obs[frames.NUM_ENVS:, ..., :-1], obs[: 12 - frames.NUM_ENVS, ..., 1:])  # stacks shift


def test_a_damaged_cache_file_is_collected_again(tmp_path, capsys):
    first = frames.collect("catch/v2", "grid", n=20, seed=3, cache_dir=tmp_path)
    cached = tmp_path / "catch_v2__grid__n20__seed3__random.npz"
    cached.write_bytes(cached.read_bytes()[:100])  # cut short, as by a full disk
    np.testing.assert_array_equal(frames.collect("catch/v2", "grid", n=20, seed=3, cache_dir=tmp_path), first)
    assert "is damaged; collecting its frames again" in capsys.readouterr().err
    np.testing.assert_array_equal(frames.collect("catch/v2", "grid", n=20, seed=3, cache_dir=tmp_path), first)
