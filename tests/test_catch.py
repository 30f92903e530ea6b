"""Tests for the JAX Catch environments (jaxfer/envs/catch.py)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfer.envs import ENV_IDS, Env, EnvError, known_env_ids, make
from jaxfer.envs.catch import PADDLE_ROW, VERSIONS, CatchState

LEFT, RIGHT, NOOP = 0, 1, 2
ALL_IDS = [f"catch/v{i}" for i in range(9)]
T_ROLL = 240  # one scan length for every rollout, so compiled rollouts are shared between tests
NOISE_VALUES = {102, 153, 204, 255}  # round(c / 5 * 255) for c in 2..5


# --------------------------------------------------------------------------------------------
# Reference: the authors' numpy game logic (v0), with paddle width / terminal row as parameters
# so that it covers v1 too.
# --------------------------------------------------------------------------------------------
class RefCatch:
    def __init__(self, pos, ballx, bally, vx, draw=(-2, 2), catch=(-2, 2), terminal=16):
        self.pos, self.ballx, self.bally, self.vx, self.vy = pos, ballx, bally, vx, 1
        self.draw, self.catch, self.terminal = draw, catch, terminal
        self.image = np.zeros((21, 21), np.int64)
        self.image[self.bally, self.ballx] = 1
        self._draw_paddle()

    @classmethod
    def from_state(cls, state, env_id):
        p = VERSIONS[env_id]
        s = jax.device_get(state)
        return cls(int(s.paddle), int(s.ball_x), int(s.ball_y), int(s.ball_vx),
                   p.paddle_draw, p.paddle_catch, p.terminal_row)

    def _draw_paddle(self):
        self.image[-5].fill(0)
        self.image[-5, self.pos + self.draw[0]:self.pos + self.draw[1] + 1] = 1

    def step(self, action):
        if action == 0:
            if self.pos > 3:
                self.pos -= 2
        elif action == 1:
            if self.pos < 17:
                self.pos += 2
        self.image[self.bally, self.ballx] = 0
        self.ballx += self.vx
        self.bally += self.vy
        if self.ballx > 20:
            self.ballx -= 2 * (self.ballx - 20)
            self.vx = -self.vx
        elif self.ballx < 0:
            self.ballx += 2 * (0 - self.ballx)
            self.vx = -self.vx
        self.image[self.bally, self.ballx] = 1
        self._draw_paddle()
        terminal = self.bally == self.terminal
        reward = int(self.pos + self.catch[0] <= self.ballx <= self.pos + self.catch[1]) if terminal else 0
        return reward, terminal

    def frame(self):
        return (self.image * 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
@functools.cache
def jitted(env_id, obs="grid"):
    env = make(env_id, obs)
    return env, jax.jit(env.reset), jax.jit(env.step)


def _rollout(env: Env, key, actions):
    k_reset, k_steps = jax.random.split(key)
    state, obs0 = env.reset(k_reset)

    def body(s, xs):
        a, k = xs
        s, o, r, d, info = env.step(s, a, k)
        return s, (s, o, r, d, info)

    _, traj = jax.lax.scan(body, state, (actions, jax.random.split(k_steps, actions.shape[0])))
    return state, obs0, traj


@functools.cache
def rollout_fn(env_id, obs="grid"):
    return jax.jit(functools.partial(_rollout, make(env_id, obs)))


def get(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


def at(tree, t):
    return jax.tree.map(lambda x: x[t], tree)


def place(env_id, state, pos, bx, by, vx):
    """A noise-free state with the given paddle/ball, its grid drawn consistently."""
    p = VERSIONS[env_id]
    grid = np.zeros((21, 21), np.uint8)
    grid[by, bx] = 1
    grid[PADDLE_ROW, pos + p.paddle_draw[0]:pos + p.paddle_draw[1] + 1] = 1
    def i32(v):
        return jnp.asarray(v, jnp.int32)

    return state._replace(grid=jnp.asarray(grid), paddle=i32(pos), ball_x=i32(bx), ball_y=i32(by),
                          ball_vx=i32(vx))


def landing_x(x, y, vx, terminal=16):
    while y < terminal:
        x, y = x + vx, y + 1
        if x > 20:
            x, vx = 40 - x, -vx
        elif x < 0:
            x, vx = -x, -vx
    return x


# --------------------------------------------------------------------------------------------
# registry / API
# --------------------------------------------------------------------------------------------
def test_registry_and_errors():
    assert [e for e in known_env_ids() if e.startswith("catch/")] == ALL_IDS
    assert set(ALL_IDS) <= set(ENV_IDS)
    with pytest.raises(EnvError) as exc:
        make("catch/v99")
    assert isinstance(exc.value, ValueError)
    msg = str(exc.value)
    assert "catch/v99" in msg
    for env_id in ALL_IDS:
        assert env_id in msg
    with pytest.raises(EnvError) as exc:
        make("catch/v0", obs="rgb")
    assert "grid" in str(exc.value) and "pixels84" in str(exc.value)


@pytest.mark.parametrize("obs,side", [("grid", 21), ("pixels84", 84)])
@pytest.mark.parametrize("env_id", ALL_IDS)
def test_shapes_and_dtypes(env_id, obs, side):
    env = make(env_id, obs)
    assert env.id == env_id and env.num_actions == 3
    assert env.obs_shape == (side, side, 4) and np.dtype(env.obs_dtype) == np.uint8
    key = jax.random.key(0)
    state, o = jax.eval_shape(env.reset, key)
    assert o.shape == env.obs_shape and o.dtype == np.uint8
    s2, o2, r, d, info = jax.eval_shape(env.step, state, jnp.int32(0), key)
    assert o2.shape == env.obs_shape and o2.dtype == np.uint8
    assert r.shape == () and r.dtype == np.float32
    assert d.shape == () and d.dtype == np.bool_
    assert set(info) == {"episode_return", "episode_length", "ball_landed", "caught"}
    assert info["episode_return"].dtype == np.float32 and info["episode_length"].dtype == np.int32
    assert info["ball_landed"].dtype == np.bool_ and info["caught"].dtype == np.bool_
    assert all(v.shape == () for v in info.values())
    assert jax.tree.structure(s2) == jax.tree.structure(state)
    assert isinstance(state, CatchState)


def test_legacy_uint32_key_works():
    env = make("catch/v2")
    state, obs = jax.eval_shape(env.reset, jax.random.PRNGKey(3))
    _, obs, *_ = jax.eval_shape(env.step, state, 1, jax.random.PRNGKey(4))
    assert obs.shape == (21, 21, 4)


# --------------------------------------------------------------------------------------------
# reset
# --------------------------------------------------------------------------------------------
def test_reset_distribution_and_first_frame():
    env = make("catch/v0")
    states, obs = get(jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(1), 2000)))
    assert set(np.unique(states.paddle)) == set(range(2, 19))
    assert set(np.unique(states.ball_x)) == set(range(21))
    assert set(np.unique(states.ball_vx)) == set(range(-2, 3))
    assert np.all(states.ball_y == 5)  # spawned on row 4, then the automatic no-op step
    assert np.all(states.ep_return == 0) and np.all(states.ep_length == 0) and np.all(states.streak == 0)
    np.testing.assert_array_equal(obs, states.frames)
    for i in range(50):
        ref = RefCatch.from_state(at(states, i), "catch/v0")
        for c in range(4):  # the first frame repeated 4 times
            np.testing.assert_array_equal(obs[i, ..., c], ref.frame())


# --------------------------------------------------------------------------------------------
# lockstep against the numpy reference
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id,ep_len", [("catch/v0", 11), ("catch/v1", 10)])
def test_lockstep_with_reference(env_id, ep_len):
    T = T_ROLL
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 3, T)
    s0, obs0, (states, obs, rew, done, info) = get(
        rollout_fn(env_id)(jax.random.key(7), jnp.asarray(actions, jnp.int32)))
    ref = RefCatch.from_state(s0, env_id)
    np.testing.assert_array_equal(obs0[..., -1], ref.frame())
    prev_obs, episodes, rewards, steps = obs0, 0, [], 0
    for t in range(T):
        r, terminal = ref.step(int(actions[t]))
        steps += 1
        assert rew[t] == r and done[t] == terminal, t
        assert info["ball_landed"][t] == terminal and info["caught"][t] == (r == 1)
        s = at(states, t)
        if terminal:
            assert steps == ep_len
            assert info["episode_length"][t] == ep_len and info["episode_return"][t] == r
            episodes, steps = episodes + 1, 0
            rewards.append(r)
            ref = RefCatch.from_state(s, env_id)  # the auto-reset episode
            assert s.ball_y == 5 and s.ep_length == 0 and s.ep_return == 0
            for c in range(4):
                np.testing.assert_array_equal(obs[t][..., c], ref.frame())
        else:
            assert info["episode_length"][t] == 0 and info["episode_return"][t] == 0
            assert (s.paddle, s.ball_x, s.ball_y, s.ball_vx) == (ref.pos, ref.ballx, ref.bally, ref.vx), t
            assert 2 <= s.paddle <= 18
            np.testing.assert_array_equal(obs[t][..., -1], ref.frame())
            np.testing.assert_array_equal(obs[t][..., :-1], prev_obs[..., 1:])
        prev_obs = obs[t]
    assert episodes == T // ep_len
    assert 0 < sum(rewards) < len(rewards)  # both catches and misses happened


# --------------------------------------------------------------------------------------------
# dynamics edge cases
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("x,vx,x_new,vx_new", [
    (19, 2, 19, -2), (1, -2, 1, 2), (20, 2, 18, -2), (0, -1, 1, 1), (20, 1, 19, -1), (18, 2, 20, 2),
    (2, -2, 0, -2),
])
def test_wall_reflection(x, vx, x_new, vx_new):
    env, reset, step = jitted("catch/v0")
    state, _ = reset(jax.random.key(0))
    state = place("catch/v0", state, pos=10, bx=x, by=8, vx=vx)
    s, obs, *_ = get(step(state, NOOP, jax.random.key(1)))
    assert (s.ball_x, s.ball_y, s.ball_vx) == (x_new, 9, vx_new)
    ref = RefCatch(10, x, 8, vx)
    ref.step(NOOP)
    np.testing.assert_array_equal(obs[..., -1], ref.frame())


def test_paddle_limits():
    env, reset, step = jitted("catch/v0")
    state0, _ = reset(jax.random.key(0))
    for start, action, expected in [(3, LEFT, 3), (4, LEFT, 2), (2, LEFT, 2), (17, RIGHT, 17),
                                    (16, RIGHT, 18), (18, RIGHT, 18), (10, LEFT, 8), (10, RIGHT, 12),
                                    (10, NOOP, 10)]:
        s, *_ = step(place("catch/v0", state0, start, 10, 5, 0), action, jax.random.key(1))
        assert int(s.paddle) == expected, (start, action)
    for start in range(2, 19):
        for action, bounds in [(LEFT, (2, 3)), (RIGHT, (17, 18))]:
            s = place("catch/v0", state0, start, 10, 5, 0)
            for i in range(10):  # ball on row 5: 10 steps stay within the episode
                s, obs, _, d, _ = step(s, action, jax.random.key(i))
                assert not d and 2 <= int(s.paddle) <= 18
            assert int(s.paddle) in bounds and int(s.paddle) % 2 == start % 2


@pytest.mark.parametrize("env_id,row,pos,caught_cols,missed_cols", [
    ("catch/v0", 15, 10, range(8, 13), [6, 7, 13, 14]),
    ("catch/v1", 14, 10, range(9, 12), [7, 8, 12, 13]),
])
def test_reward_at_paddle_edges(env_id, row, pos, caught_cols, missed_cols):
    env, reset, step = jitted(env_id)
    state0, _ = reset(jax.random.key(0))
    for x in list(caught_cols) + list(missed_cols):
        s, _, r, d, info = step(place(env_id, state0, pos, x, row, 0), NOOP, jax.random.key(1))
        expected = float(x in caught_cols)
        assert bool(d) and float(r) == expected, x
        assert bool(info["ball_landed"]) and bool(info["caught"]) == bool(expected)
        assert float(info["episode_return"]) == expected and int(info["episode_length"]) == 1
    # the paddle moves before the catch is checked
    _, _, r, d, _ = step(place(env_id, state0, pos, pos + 3, row, 0), RIGHT, jax.random.key(1))
    assert bool(d) and float(r) == 1.0
    # one row above the terminal row nothing happens
    _, _, r, d, info = step(place(env_id, state0, pos, pos, row - 1, 0), NOOP, jax.random.key(1))
    assert not bool(d) and float(r) == 0.0 and not bool(info["ball_landed"])


def test_v1_narrow_paddle_drawn():
    env, reset, step = jitted("catch/v1")
    state0, _ = reset(jax.random.key(0))
    for pos in range(2, 19):
        s, obs, *_ = step(place("catch/v1", state0, pos, 10, 5, 0), NOOP, jax.random.key(1))
        row = np.asarray(obs[PADDLE_ROW, :, -1])
        assert sorted(np.flatnonzero(row)) == [pos - 1, pos]
        assert np.all(row[[pos - 1, pos]] == 255)
        assert np.count_nonzero(np.asarray(obs[..., -1])) == 3  # paddle + ball


# --------------------------------------------------------------------------------------------
# v2 noise
# --------------------------------------------------------------------------------------------
def test_v2_noise():
    T = T_ROLL
    actions = jnp.asarray(np.random.default_rng(1).integers(0, 3, T), jnp.int32)
    key = jax.random.key(11)
    s0, obs0, (states, obs, rew, done, _) = get(rollout_fn("catch/v2")(key, actions))
    _, obs0_v0, (states_v0, obs_v0, rew_v0, done_v0, _) = get(rollout_fn("catch/v0")(key, actions))
    # same dynamics as v0 from the same key; ball and paddle are exactly the v0 foreground, drawn 51
    np.testing.assert_array_equal(states.paddle, states_v0.paddle)
    np.testing.assert_array_equal(states.ball_x, states_v0.ball_x)
    np.testing.assert_array_equal(rew, rew_v0)
    np.testing.assert_array_equal(done, done_v0)
    np.testing.assert_array_equal(obs == 51, obs_v0 == 255)
    np.testing.assert_array_equal(obs0 == 51, obs0_v0 == 255)

    def check_frame(f, s):
        fg = np.zeros((21, 21), bool)
        fg[s.ball_y, s.ball_x] = True
        fg[PADDLE_ROW, s.paddle - 2:s.paddle + 3] = True
        assert np.all(f[fg] == 51)
        assert set(np.unique(f[~fg])) <= NOISE_VALUES | {0}
        # zeros are exactly the trail: one per row the ball has left (rows 4 .. ball_y - 1)
        zeros = np.argwhere(f == 0)
        assert sorted(zeros[:, 0]) == list(range(4, s.ball_y))
        assert np.all(f[PADDLE_ROW][~fg[PADDLE_ROW]] >= 102)

    check_frame(obs0[..., -1], s0)
    prev_f, prev_s, refreshed = obs0[..., -1], s0, 0
    for t in range(T):
        f, s = obs[t][..., -1], at(states, t)
        check_frame(f, s)
        if not done[t]:
            changed = f != prev_f
            off_row = np.ones(21, bool)
            off_row[PADDLE_ROW] = False
            expected = np.zeros((21, 21), bool)
            expected[prev_s.ball_y, prev_s.ball_x] = True
            expected[s.ball_y, s.ball_x] = True
            np.testing.assert_array_equal(changed[off_row], expected[off_row])
            assert f[prev_s.ball_y, prev_s.ball_x] == 0
            mask = np.ones(21, bool)
            mask[min(s.paddle, prev_s.paddle) - 2:max(s.paddle, prev_s.paddle) + 3] = False
            refreshed += np.any(changed[PADDLE_ROW][mask])
        prev_f, prev_s = f, s
    assert refreshed == (~done).sum()  # paddle-row noise is redrawn every step

    # noise is driven by the keys
    env, reset, step = jitted("catch/v2")
    a, _ = reset(jax.random.key(0))
    b, _ = reset(jax.random.key(1))
    a2, _ = reset(jax.random.key(0))
    assert np.any(np.asarray(a.grid) != np.asarray(b.grid))
    np.testing.assert_array_equal(a.grid, a2.grid)
    s1, o1, *_ = step(a, NOOP, jax.random.key(5))
    s2, o2, *_ = step(a, NOOP, jax.random.key(6))
    s3, o3, *_ = step(a, NOOP, jax.random.key(5))
    assert np.any(np.asarray(o1[PADDLE_ROW, :, -1]) != np.asarray(o2[PADDLE_ROW, :, -1]))
    np.testing.assert_array_equal(o1, o3)
    rows = np.arange(21) != PADDLE_ROW
    np.testing.assert_array_equal(np.asarray(o1[rows, :, -1]), np.asarray(o2[rows, :, -1]))


# --------------------------------------------------------------------------------------------
# v3 mirror
# --------------------------------------------------------------------------------------------
def test_v3_is_vertical_flip_of_v0():
    T = T_ROLL
    actions = jnp.asarray(np.random.default_rng(2).integers(0, 3, T), jnp.int32)
    key = jax.random.key(21)
    _, obs0_a, (st_a, obs_a, r_a, d_a, _) = get(rollout_fn("catch/v0")(key, actions))
    _, obs0_b, (st_b, obs_b, r_b, d_b, _) = get(rollout_fn("catch/v3")(key, actions))
    np.testing.assert_array_equal(obs0_b, obs0_a[::-1])
    np.testing.assert_array_equal(obs_b, obs_a[:, ::-1])
    np.testing.assert_array_equal(r_a, r_b)
    np.testing.assert_array_equal(d_a, d_b)
    assert d_a.sum() >= 4
    # the ball rises: the newest v3 frame shows it on row 20 - ball_y, the paddle on row 4
    for t in np.flatnonzero(~d_b)[:20]:
        f = obs_b[t][..., -1]
        assert f[20 - st_b.ball_y[t], st_b.ball_x[t]] == 255
        assert np.count_nonzero(f[20 - PADDLE_ROW]) == 5


@pytest.mark.parametrize("env_id,base,flip_rows,flip_cols", [
    ("catch/v5", "catch/v2", True, False), ("catch/v6", "catch/v1", True, False),
    ("catch/v7", "catch/v1", False, False), ("catch/v8", "catch/v0", False, True),
])
def test_compositions_are_their_base_game_seen_through_the_change(env_id, base, flip_rows, flip_cols):
    """v5-v8 play their base game's dynamics from the same key; only the frame differs (flips, noise)."""
    actions = jnp.asarray(np.random.default_rng(3).integers(0, 3, T_ROLL), jnp.int32)
    key = jax.random.key(22)
    _, _, (st_a, obs_a, r_a, d_a, _) = get(rollout_fn(base)(key, actions))
    _, _, (st_b, obs_b, r_b, d_b, _) = get(rollout_fn(env_id)(key, actions))
    np.testing.assert_array_equal(r_a, r_b)
    np.testing.assert_array_equal(d_a, d_b)
    np.testing.assert_array_equal(st_a.ball_x, st_b.ball_x)
    assert d_a.sum() >= 4 and r_a.sum() >= 1
    if env_id == "catch/v7":  # v1 + noise: v1's ball and paddle cells at 51, every other cell noise or trail
        np.testing.assert_array_equal(obs_b == 51, obs_a == 255)
        assert np.all(np.isin(obs_b, [0, 51, 102, 153, 204, 255])) and np.mean(obs_b >= 102) > 0.5
        return
    expect = obs_a[:, ::-1] if flip_rows else obs_a
    expect = expect[:, :, ::-1] if flip_cols else expect
    np.testing.assert_array_equal(obs_b, expect)


# --------------------------------------------------------------------------------------------
# v4 sparse streak
# --------------------------------------------------------------------------------------------
def _move(pos, action):
    return pos - 2 if action == LEFT and pos > 3 else pos + 2 if action == RIGHT and pos < 17 else pos


def _act_towards(pos, target):
    d = target - pos
    return RIGHT if d >= 2 else LEFT if d <= -2 else NOOP


def _run_v4_episode(key, miss_ball=None, max_steps=80):
    """Play one v4 episode with a perfect policy (or one that dodges ball number `miss_ball`)."""
    env, reset, step = jitted("catch/v4")
    k_reset, key = jax.random.split(key)
    s, _ = reset(k_reset)
    s = get(s)
    landed, caught, rewards, reachable = 0, 0, [], True
    for t in range(max_steps):
        land = landing_x(int(s.ball_x), int(s.ball_y), int(s.ball_vx))
        if landed + 1 == miss_ball:
            action = _act_towards(int(s.paddle), 18 if land < 10 else 2)
        else:
            reachable &= not (s.paddle % 2 == 1 and land in (0, 20))
            action = _act_towards(int(s.paddle), land)
        prev = s
        s, obs, r, d, info = get(step(jax.device_put(s), action, jax.random.fold_in(key, t)))
        rewards.append(float(r))
        if info["ball_landed"]:
            landed += 1
            caught += bool(info["caught"])
            if not d:  # a new ball spawned; the paddle kept its position
                assert s.ball_y == 5 and s.paddle == _move(int(prev.paddle), action)
                assert s.streak == caught and s.ep_length == t + 1
        if d:
            return dict(rewards=rewards, landed=landed, caught=caught, info=info, steps=t + 1,
                        reachable=reachable, state=s)
    raise AssertionError("episode did not end")


def test_v4_reward_only_at_fifth_consecutive_catch():
    wins = 0
    for seed in range(6):
        ep = _run_v4_episode(jax.random.key(100 + seed))
        if not ep["reachable"]:  # odd paddle position and a ball landing at a wall
            continue
        wins += 1
        assert ep["landed"] == 5 and ep["caught"] == 5 and ep["steps"] == 55
        assert ep["rewards"] == [0.0] * 54 + [1.0]
        assert float(ep["info"]["episode_return"]) == 1.0 and int(ep["info"]["episode_length"]) == 55
        assert ep["state"].ep_length == 0 and ep["state"].streak == 0  # auto-reset
    assert wins >= 3


def test_v4_miss_ends_episode_with_zero():
    for seed in range(10):
        ep = _run_v4_episode(jax.random.key(200 + seed), miss_ball=3)
        if not ep["reachable"]:
            continue
        assert ep["landed"] == 3 and ep["caught"] == 2 and ep["steps"] == 33
        assert sum(ep["rewards"]) == 0.0
        assert not bool(ep["info"]["caught"]) and bool(ep["info"]["ball_landed"])
        assert float(ep["info"]["episode_return"]) == 0.0 and int(ep["info"]["episode_length"]) == 33
        return
    pytest.fail("no reachable episode found")


# --------------------------------------------------------------------------------------------
# pixels84
# --------------------------------------------------------------------------------------------
def test_pixels84_is_resized_grid():
    env_id = "catch/v2"
    T = T_ROLL
    actions = jnp.asarray(np.random.default_rng(3).integers(0, 3, T), jnp.int32)
    key = jax.random.key(5)
    _, g0, (_, g, _, d, _) = get(rollout_fn(env_id, "grid")(key, actions))
    _, p0, (_, p, _, d_p, _) = get(rollout_fn(env_id, "pixels84")(key, actions))
    np.testing.assert_array_equal(d, d_p)
    frames = np.concatenate([g0[None], g[:30]]).astype(np.float32)  # (31, 21, 21, 4)
    expected = jax.image.resize(frames, (31, 84, 84, 4), "bilinear")  # resizes the two spatial axes
    expected = np.clip(np.round(np.asarray(expected)), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(p0, expected[0])
    np.testing.assert_array_equal(p[:30], expected[1:])
    assert p.dtype == np.uint8 and p.shape == (T, 84, 84, 4)
    assert len(np.unique(p)) > len(np.unique(g))  # interpolated values appear


# --------------------------------------------------------------------------------------------
# jit / vmap consistency
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id,obs", [("catch/v2", "pixels84"), ("catch/v4", "grid")])
def test_vmap_matches_unbatched(env_id, obs):
    T, B = T_ROLL, 3
    keys = jax.random.split(jax.random.key(9), B)
    actions = jnp.asarray(np.random.default_rng(4).integers(0, 3, (B, T)), jnp.int32)
    batched = get(jax.jit(jax.vmap(functools.partial(_rollout, make(env_id, obs))))(keys, actions))
    single = rollout_fn(env_id, obs)
    _, _, (_, _, _, done, info) = batched
    assert done.sum() >= 3 * B
    if env_id == "catch/v4":  # balls caught without ending the episode were replaced
        assert np.any(info["caught"] & ~done)
    for b in range(B):
        one = get(single(keys[b], actions[b]))
        jax.tree.map(np.testing.assert_array_equal, at(batched, b), one)


def test_jit_matches_eager():
    env = make("catch/v2")
    _, reset, step = jitted("catch/v2")
    key = jax.random.key(13)
    s_e, o_e = env.reset(key)
    s_j, o_j = reset(key)
    jax.tree.map(np.testing.assert_array_equal, get((s_e, o_e)), get((s_j, o_j)))
    s_j = s_e = place("catch/v2", s_e, 10, 10, 14, 1)
    for t, a in enumerate([LEFT, RIGHT, NOOP, LEFT]):  # crosses an episode end (row 16 at t=1)
        k = jax.random.fold_in(key, t)
        out_e = env.step(s_e, a, k)
        out_j = step(s_j, a, k)
        jax.tree.map(np.testing.assert_array_equal, get(out_e), get(out_j))
        s_e, s_j = out_e[0], out_j[0]
