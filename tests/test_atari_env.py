"""atari/<Game> on envpool's XLA interface: pool layout and seeding, presets, episode semantics, errors."""
import dataclasses
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

envpool = pytest.importorskip("envpool")

from conftest import pool_rollout  # noqa: E402

from jaxfer import config, envs  # noqa: E402
from jaxfer.envs import atari  # noqa: E402

pytestmark = pytest.mark.stack  # also run on the accelerator host's stack (.ci/run)


def actions_for(seed: int, steps: int, num_envs: int, num_actions: int) -> np.ndarray:
    """A fixed random action sequence (steps, num_envs) that depends only on ``seed``."""
    return np.random.default_rng(1000 + seed).integers(0, num_actions, (steps, num_envs)).astype(np.int32)


def play(env_id, obs, num_seeds, num_envs, seed, steps):
    """Reset a fresh pool and play each seed's fixed actions; returns (first obs, (obs, reward, done, info))."""
    env = envs.make(env_id, obs)
    pool = envs.pool(env, num_seeds, num_envs, seed)
    state, first = pool.reset(jnp.zeros(num_seeds))
    acts = np.stack([actions_for(seed + i, steps, num_envs, env.num_actions) for i in range(num_seeds)], 1)
    _, out = pool_rollout(pool, state, jnp.asarray(acts))
    return np.asarray(first), jax.tree.map(np.asarray, out), acts


@pytest.mark.cli
def test_registry_lazy_import_and_env_description():
    code = "import sys, jaxfer.envs as e; e.make('catch/v0'); assert 'envpool' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    for game in ("DemonAttack", "Pong", "Phoenix", "SpaceInvaders", "Seaquest", "Breakout"):
        assert f"atari/{game}" in envs.known_env_ids()
    env = envs.make("atari/Pong", obs="nature")
    assert (env.reset, env.step) == (None, None) and env.make_pool is not None
    assert (env.num_actions, env.obs_shape, env.obs_dtype, env.frame_stack_fill) == (6, (84, 84, 4), np.uint8, "repeat")
    assert envs.make("atari/Breakout", obs="ea3c").obs_shape == (80, 80, 3)
    assert envs.make("atari/Seaquest", obs="ea3c_stack4").num_actions == 18
    assert envs.make("atari/Breakout", obs="ea3c_stack4").obs_shape == (80, 80, 12)


def test_unknown_game_and_bad_obs_mode_errors():
    with pytest.raises(envs.EnvError) as exc:
        envs.make("atari/NotAGame", obs="nature")
    assert "atari/NotAGame" in str(exc.value) and "atari/Pong" in str(exc.value) and "catch/v0" in str(exc.value)
    with pytest.raises(envs.EnvError, match="'nature', 'ea3c', 'ea3c_stack4'") as exc:
        envs.make("atari/Pong", obs="grid")
    assert "atari/Pong" in str(exc.value)
    with pytest.raises(envs.EnvError, match="'grid', 'pixels84'"):
        envs.make("catch/v0", obs="nature")
    with pytest.raises(config.ConfigError, match="'nature', 'ea3c', 'ea3c_stack4'"):
        config.load(None, ["env=atari/Pong"])  # the default obs (grid) is catch's
    assert config.load(None, ["env=atari/Pong", "obs=nature"]).obs == "nature"


def test_seed_i_of_a_pool_is_the_one_seed_pool_of_seed_plus_i():
    steps, num_envs = 50, 2
    first, (obs, reward, done, info), acts = play("atari/Breakout", "nature", 2, num_envs, 5, steps)
    assert obs.shape == (steps, 2, num_envs, 84, 84, 4) and obs.dtype == np.uint8
    assert reward.dtype == np.float32 and done.dtype == bool
    assert done.any()  # a lost life within 50 random steps: the comparison covers episodic-life dones
    for i in range(2):
        first_i, (obs_i, reward_i, done_i, info_i), acts_i = play("atari/Breakout", "nature", 1, num_envs, 5 + i, steps)
        np.testing.assert_array_equal(acts[:, i], acts_i[:, 0])
        np.testing.assert_array_equal(first[i], first_i[0])
        np.testing.assert_array_equal(obs[:, i], obs_i[:, 0])
        np.testing.assert_array_equal(reward[:, i], reward_i[:, 0])
        np.testing.assert_array_equal(done[:, i], done_i[:, 0])
        for k in info:
            np.testing.assert_array_equal(info[k][:, i], info_i[k][:, 0], err_msg=k)
    assert not np.array_equal(obs[:, 0], obs[:, 1])  # different seeds, different games


def test_envpool_sync_mode_returns_envs_in_id_order():
    n = 6
    env = envpool.make("Breakout-v5", env_type="gymnasium", num_envs=n, batch_size=n, num_threads=2, seed=0)
    env.reset()
    handle, _, _, step = env.xla()

    def body(h, a):
        h, (_, _, _, _, info) = step(h, a)
        return h, info["env_id"]

    acts = jnp.asarray(np.random.default_rng(0).integers(0, 4, (200, n)), jnp.int32)
    _, ids = jax.jit(lambda h, a: jax.lax.scan(body, h, a))(handle, acts)
    np.testing.assert_array_equal(np.asarray(ids), np.broadcast_to(np.arange(n), (200, n)))


def twin(task_id, num_envs, seed, **overrides):
    """envpool's own Python-API pool with the preset's options (for reference observations)."""
    opts = atari.PRESETS["nature"].envpool | overrides
    return envpool.make(task_id, env_type="gymnasium", num_envs=num_envs, batch_size=num_envs, num_threads=2,
                        seed=seed * num_envs, **opts)


def test_nature_stack_equals_envpools_own_stacking_without_lost_lives():
    steps, num_envs, seed = 40, 2, 3
    first, (obs, reward, done, _), acts = play("atari/Pong", "nature", 1, num_envs, seed, steps)
    ref = twin("Pong-v5", num_envs, seed, stack_num=4)
    o, _ = ref.reset()
    np.testing.assert_array_equal(first[0], o.transpose(0, 2, 3, 1))
    assert all(np.array_equal(first[..., k], first[..., 3]) for k in range(3))  # reset: first frame repeated
    for t in range(steps):
        o, r, te, tr, _ = ref.step(acts[t, 0])
        np.testing.assert_array_equal(obs[t, 0], o.transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(reward[t, 0], r)
        np.testing.assert_array_equal(done[t, 0], te | tr)


def test_ea3c_crop_resize_and_stack4():
    steps, num_envs, seed = 60, 2, 1
    first, (obs, *_), acts = play("atari/Breakout", "ea3c", 1, num_envs, seed, steps)
    assert obs.shape == (steps, 1, num_envs, 80, 80, 3) and obs.dtype == np.uint8
    ref = twin("Breakout-v5", num_envs, seed, img_height=210, img_width=160, gray_scale=False)

    def expected(o):  # (N, 3, 210, 160) -> rows 34..193, all columns, 2x2 means rounded, channels last
        x = o[:, :, 34:194, :160].astype(np.int32).reshape(num_envs, 3, 80, 2, 80, 2).sum((3, 5))
        return ((x + 2) // 4).astype(np.uint8).transpose(0, 2, 3, 1)

    np.testing.assert_array_equal(first[0], expected(ref.reset()[0]))
    for t in range(steps):
        np.testing.assert_array_equal(obs[t, 0], expected(ref.step(acts[t, 0])[0]))
    first4, (obs4, _, done4, _), acts4 = play("atari/Breakout", "ea3c_stack4", 1, num_envs, seed, steps)
    np.testing.assert_array_equal(acts4, acts)
    assert obs4.shape == (steps, 1, num_envs, 80, 80, 12)
    np.testing.assert_array_equal(obs4[..., 9:], obs)  # newest frame last
    np.testing.assert_array_equal(first4, np.tile(first, 4))
    assert done4.any()
    prev = np.concatenate([first4[None], obs4[:-1]])
    for t in range(steps):
        for j in range(num_envs):
            want = np.tile(obs[t, 0, j], 4) if done4[t, 0, j] else np.concatenate(
                [prev[t, 0, j, ..., 3:], obs[t, 0, j]], -1)
            np.testing.assert_array_equal(obs4[t, 0, j], want)


def test_episodic_life_game_end_true_score_and_reset_step():
    steps, num_envs = 300, 2
    _, (obs, reward, done, info), _ = play("atari/Breakout", "nature", 1, num_envs, 0, steps)
    lives, end, raw = info["lives"][:, 0], info["episode_end"][:, 0], info["raw_reward"][:, 0]
    reset_step = info["reset_step"][:, 0]
    assert end.sum() >= 2 and (done[:, 0] & ~end & ~reset_step).sum() >= 4  # games over and lost lives
    prev_lives = np.concatenate([np.full((1, num_envs), 5), lives[:-1]])
    lost = lives < prev_lives
    np.testing.assert_array_equal(end, lives == 0)  # a real game over is the last life lost (Breakout)
    np.testing.assert_array_equal(done[:, 0], lost | reset_step)  # every lost life ends a learner's episode
    np.testing.assert_array_equal(reward[:, 0], np.sign(raw))
    for j in range(num_envs):
        start, length = 0, 0
        for t in range(steps):
            if reset_step[t, j]:  # the step after a game over: action ignored, new game's first frame
                assert t > 0 and end[t - 1, j] and raw[t, j] == 0 and lives[t, j] == 5
                assert all(np.array_equal(obs[t, 0, j, ..., k], obs[t, 0, j, ..., 3]) for k in range(3))
                start, length = t + 1, 0
                continue
            length += 1
            if end[t, j]:
                assert info["episode_return"][t, 0, j] == raw[start:t + 1, j].sum()
                assert info["episode_length"][t, 0, j] == length
            else:
                assert info["episode_return"][t, 0, j] == 0 and info["episode_length"][t, 0, j] == 0
        # the stack restarts after every done (a lost life too), otherwise the newest frame shifts in
        for t in range(1, steps):
            o, before = obs[t, 0, j], obs[t - 1, 0, j]
            want = np.repeat(o[..., 3:], 4, -1) if done[t, 0, j] else np.concatenate([before[..., 1:], o[..., 3:]], -1)
            np.testing.assert_array_equal(o, want)


def test_rewards_clipped_for_the_loss_true_score_kept():
    _, (_, reward, _, info), _ = play("atari/SpaceInvaders", "nature", 1, 2, 0, 100)
    raw = info["raw_reward"]
    assert (raw > 1).any()  # SpaceInvaders scores 5..30 points per alien
    np.testing.assert_array_equal(reward, np.sign(raw))


def test_truncation_is_a_game_end(monkeypatch):
    preset = atari.PRESETS["nature"]
    monkeypatch.setitem(atari.PRESETS, "nature",
                        dataclasses.replace(preset, envpool=preset.envpool | {"max_episode_steps": 20}))
    _, (_, _, done, info), _ = play("atari/Pong", "nature", 1, 2, 0, 45)
    end = info["episode_end"][:, 0]
    assert end[19].all() and done[19, 0].all() and info["reset_step"][20, 0].all()
    assert (info["episode_length"][19, 0] == 20).all() and end.sum() == 4  # ends at steps 19 and 40
    np.testing.assert_array_equal(info["episode_return"][19, 0], info["raw_reward"][:20, 0].sum(0))


def test_two_pools_step_in_one_jitted_function():
    env = envs.make("atari/Pong", "nature")
    train, evaluate = envs.pool(env, 2, 2, 0), envs.pool(env, 2, 1, 7)
    assert train.options["seed_base"] == 0 and evaluate.options["seed_base"] == 7
    assert train.options["task_id"] == "Pong-v5" and train.options["envpool_version"] == envpool.__version__
    assert not train.checkpointable

    @jax.jit
    def both(sa, sb, a, b):
        sa, oa, *_ = train.step(sa, a)
        sb, ob, *_ = evaluate.step(sb, b)
        return sa, sb, oa, ob

    sa, _ = train.reset(None)
    sb, _ = evaluate.reset(None)
    lone = envs.pool(env, 2, 1, 7)  # the eval pool's twin, stepped alone
    sl, _ = lone.reset(None)
    step_lone = jax.jit(lone.step)
    for t in range(5):
        b = jnp.full((2, 1), t % 6, jnp.int32)
        sa, sb, oa, ob = both(sa, sb, jnp.zeros((2, 2), jnp.int32), b)
        sl, ol, *_ = step_lone(sl, b)
        np.testing.assert_array_equal(ob, ol)
    assert oa.shape == (2, 2, 84, 84, 4) and ob.shape == (2, 1, 84, 84, 4)
