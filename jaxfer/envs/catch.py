"""Catch (Sabatelli's thesis ch. 8, after van de Wolfshaar's CatchEnv), in pure JAX.

A 21x21 grid. A ball spawns on row 4 at a random column with a random horizontal speed
``vx`` in -2..2 and falls one row per step, bouncing off the side walls. The agent moves a paddle
on row 16 (``size - 5``) two cells left (action 0) or right (1), or stays (2). The reference game
logic (numpy)::

    reset: image.fill(0); pos = randint(2, 19)             # 2..18
           vx = randint(5) - 2; vy = 1; ballx = randint(21); bally = 4
           image[bally, ballx] = 1; image[-5, pos-2:pos+3] = 1
           return step(2)                                  # one automatic no-op step
    step(a): left: if pos > 3: pos -= 2 ; right: if pos < 17: pos += 2
           image[bally, ballx] = 0
           ballx += vx; bally += vy
           if ballx > 20: ballx -= 2*(ballx-20); vx = -vx
           elif ballx < 0: ballx += 2*(0-ballx); vx = -vx
           image[bally, ballx] = 1
           image[-5].fill(0); image[-5, pos-2:pos+3] = 1
           terminal = bally == 16
           reward = int(pos-2 <= ballx <= pos+2) if terminal else 0

An agent episode therefore starts with the ball on row 5 and lasts 11 steps in v0.

Versions (``VERSIONS``):

* v0: the game above.
* v1: small paddle: drawn 2 cells wide (columns pos-1..pos, still on row 16); the episode ends
  one row earlier (ball on row 15, 10 steps); caught iff pos-1 <= ballx <= pos+1.
* v2: v0 plus noise. Interpretation: the grid holds cell codes 0..5. At reset every cell gets a
  random integer 2..5; the paddle row's non-paddle cells get fresh random 2..5 values every step
  (the reference's ``image[-5].fill(...)``); a cell the ball leaves is set to 0, as in the
  reference ``image[bally, ballx] = 0``, so the ball leaves a dark trail; ball and paddle cells
  are 1. The frame value is ``round(cell / 5 * 255)``: ball/paddle 51, noise 102..255, trail 0.
  All noise comes from the key passed to ``reset``/``step``.
* v3: v0 mirrored top-bottom: same dynamics, each frame flipped vertically (the ball rises).
* v4: sparse v0. An episode is a run of balls: after a catch that is not the 5th in a row a new
  ball spawns by the reset rule (row 4, random column and vx, then the automatic no-op step, so
  it shows on row 5 in the returned frame; the paddle keeps its position) and the episode goes on.
  The episode ends at a miss (reward 0) or at the 5th consecutive catch (reward 1).

jaxfer's compositions of those changes (not in the thesis; they enlarge the set of games a transfer
predictor is validated on, see ``benchmarks/transfer_predictors.py``):

* v5: v2's noise, v3's mirror (noise + flipped top-bottom).
* v6: v1's small paddle, flipped top-bottom.
* v7: v1's small paddle with v2's noise.
* v8: v0 mirrored left-right: the same dynamics and actions, each frame flipped horizontally, so
  action 0 (LEFT) moves the paddle to the right of the screen.

In other versions the frame value is 255 for ball/paddle cells, 0 elsewhere.

Observations: ``"grid"``: the last 4 frames (21, 21, 4) uint8, newest last; ``"pixels84"``:
each frame bilinearly resized to 84x84 (rounded, clipped, uint8), last 4 stacked -> (84, 84, 4).
After reset the stack holds the first frame 4 times.

``info`` (scalars): ``episode_return`` / ``episode_length`` of the episode that just ended (0 when
not done; length counts agent steps, not the automatic no-op), ``ball_landed`` (a ball reached the
terminal row this step, row 16, or 15 in v1) and ``caught`` (that ball was caught).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxfer.envs.base import Env

SIZE = 21
PADDLE_ROW = SIZE - 5  # 16
SPAWN_ROW = 4
LEFT, RIGHT, NOOP = 0, 1, 2
NUM_ACTIONS = 3
STACK = 4
PIXELS = 84


@dataclasses.dataclass(frozen=True)
class CatchParams:
    paddle_draw: tuple[int, int] = (-2, 2)  # paddle drawn on columns pos+lo .. pos+hi
    paddle_catch: tuple[int, int] = (-2, 2)  # caught iff pos+lo <= ballx <= pos+hi
    terminal_row: int = PADDLE_ROW  # a ball reaching this row lands (caught or missed)
    noise: bool = False  # v2 background / paddle-row noise
    flip: bool = False  # v3 vertical mirror of every frame
    mirror: bool = False  # v8 horizontal mirror of every frame (actions unchanged)
    streak: int = 1  # consecutive catches needed for reward 1 and the end of the episode


VERSIONS = {
    "catch/v0": CatchParams(),
    "catch/v1": CatchParams(paddle_draw=(-1, 0), paddle_catch=(-1, 1), terminal_row=PADDLE_ROW - 1),
    "catch/v2": CatchParams(noise=True),
    "catch/v3": CatchParams(flip=True),
    "catch/v4": CatchParams(streak=5),
    "catch/v5": CatchParams(noise=True, flip=True),
    "catch/v6": CatchParams(paddle_draw=(-1, 0), paddle_catch=(-1, 1), terminal_row=PADDLE_ROW - 1, flip=True),
    "catch/v7": CatchParams(paddle_draw=(-1, 0), paddle_catch=(-1, 1), terminal_row=PADDLE_ROW - 1, noise=True),
    "catch/v8": CatchParams(mirror=True),
}


class CatchState(NamedTuple):
    grid: jax.Array  # (21, 21) uint8 cell codes: 0 empty, 1 ball/paddle, 2..5 noise (v2)
    paddle: jax.Array  # int32, paddle centre ``pos`` (2..18)
    ball_x: jax.Array  # int32 column 0..20
    ball_y: jax.Array  # int32 row (vy is always 1)
    ball_vx: jax.Array  # int32 in -2..2
    streak: jax.Array  # int32, consecutive catches in this episode
    ep_return: jax.Array  # float32, return accumulated in this episode
    ep_length: jax.Array  # int32, agent steps taken in this episode
    frames: jax.Array  # uint8 (H, W, 4) observation stack, newest last


def _paddle_mask(p: CatchParams, pos):
    cols = jnp.arange(SIZE)
    return (cols >= pos + p.paddle_draw[0]) & (cols <= pos + p.paddle_draw[1])


def _noise(key, shape):
    return jax.random.randint(key, shape, 2, 6).astype(jnp.uint8)


def _spawn_ball(key):
    x, vx = jax.random.randint(key, (2,), 0, jnp.array([SIZE, 5]))  # ballx = randint(21), vx = randint(5) - 2
    return x, jnp.int32(SPAWN_ROW), vx - 2


def _advance(p: CatchParams, grid, pos, bx, by, vx, action, key):
    """One step of the reference game logic (paddle, ball, redraw)."""
    pos = jnp.where((action == LEFT) & (pos > 3), pos - 2, pos)
    pos = jnp.where((action == RIGHT) & (pos < 17), pos + 2, pos)
    grid = grid.at[by, bx].set(0)
    bx, by = bx + vx, by + 1
    over, under = bx > SIZE - 1, bx < 0
    bx = jnp.where(over, 2 * (SIZE - 1) - bx, jnp.where(under, -bx, bx))
    vx = jnp.where(over | under, -vx, vx)
    grid = grid.at[by, bx].set(1)
    row = _noise(key, (SIZE,)) if p.noise else jnp.zeros(SIZE, jnp.uint8)
    grid = grid.at[PADDLE_ROW].set(jnp.where(_paddle_mask(p, pos), jnp.uint8(1), row))
    return grid, pos, bx, by, vx


def _spawn(p: CatchParams, grid, pos, key):
    """Put a new ball on the spawn row and take the automatic no-op step."""
    k_ball, k_noise = jax.random.split(key)
    bx, by, vx = _spawn_ball(k_ball)
    grid = grid.at[by, bx].set(1)
    return _advance(p, grid, pos, bx, by, vx, NOOP, k_noise)


def _frame(p: CatchParams, grid):
    """Cell codes -> uint8 frame (21, 21)."""
    frame = (grid.astype(jnp.int32) * (51 if p.noise else 255)).astype(jnp.uint8)
    frame = frame[::-1] if p.flip else frame
    return frame[:, ::-1] if p.mirror else frame


def _to_obs(frame, obs: str):
    if obs == "grid":
        return frame
    x = jax.image.resize(frame.astype(jnp.float32), (PIXELS, PIXELS), "bilinear")
    return jnp.clip(jnp.round(x), 0, 255).astype(jnp.uint8)


def make_catch(env_id: str, obs: str = "grid") -> Env:
    p = VERSIONS[env_id]
    if obs not in ("grid", "pixels84"):
        raise ValueError(f"unknown obs '{obs}'; allowed: 'grid', 'pixels84'")
    side = SIZE if obs == "grid" else PIXELS

    def observe(grid):
        return _to_obs(_frame(p, grid), obs)

    def reset(key):
        k_pos, k_bg, k_spawn = jax.random.split(key, 3)
        pos = jax.random.randint(k_pos, (), 2, 19)
        grid = _noise(k_bg, (SIZE, SIZE)) if p.noise else jnp.zeros((SIZE, SIZE), jnp.uint8)
        grid = grid.at[PADDLE_ROW].set(jnp.where(_paddle_mask(p, pos), jnp.uint8(1), grid[PADDLE_ROW]))
        grid, pos, bx, by, vx = _spawn(p, grid, pos, k_spawn)
        frames = jnp.repeat(observe(grid)[..., None], STACK, axis=-1)
        state = CatchState(
            grid=grid, paddle=pos, ball_x=bx, ball_y=by, ball_vx=vx, streak=jnp.int32(0),
            ep_return=jnp.float32(0), ep_length=jnp.int32(0), frames=frames,
        )
        return state, frames

    def step(state: CatchState, action, key):
        k_move, k_spawn, k_reset = jax.random.split(key, 3)
        action = jnp.asarray(action, jnp.int32)
        grid, pos, bx, by, vx = _advance(
            p, state.grid, state.paddle, state.ball_x, state.ball_y, state.ball_vx, action, k_move
        )
        landed = by == p.terminal_row
        caught = landed & (bx >= pos + p.paddle_catch[0]) & (bx <= pos + p.paddle_catch[1])
        streak = state.streak + caught.astype(jnp.int32)
        complete = streak >= p.streak
        done = landed & (~caught | complete)
        reward = (caught & complete).astype(jnp.float32)

        # v4: a caught ball that does not end the episode is replaced by a new one.
        respawn = landed & ~done
        spawned = _spawn(p, grid, pos, k_spawn)
        grid, pos, bx, by, vx = (jnp.where(respawn, s, c) for s, c in zip(spawned, (grid, pos, bx, by, vx)))

        frames = jnp.concatenate([state.frames[..., 1:], observe(grid)[..., None]], axis=-1)
        ep_return, ep_length = state.ep_return + reward, state.ep_length + 1
        cont = CatchState(grid, pos, bx, by, vx, streak, ep_return, ep_length, frames)
        fresh, _ = reset(k_reset)
        new_state = jax.tree.map(lambda f, c: jnp.where(done, f, c), fresh, cont)
        info = {
            "episode_return": jnp.where(done, ep_return, jnp.float32(0)),
            "episode_length": jnp.where(done, ep_length, jnp.int32(0)),
            "ball_landed": landed,
            "caught": caught,
        }
        return new_state, new_state.frames, reward, done, info

    return Env(
        id=env_id,
        num_actions=NUM_ACTIONS,
        obs_shape=(side, side, STACK),
        obs_dtype=np.uint8,
        reset=reset,
        step=step,
    )
