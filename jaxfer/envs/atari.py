"""Atari 2600 games through envpool's XLA interface: ``atari/<Game>``, stepped inside ``lax.scan``.

envpool's XLA step cannot be vmapped, so an Atari ``Env`` has no per-env ``reset``/``step``; it gives
``make_pool(num_seeds S, num_envs E, seed) -> Pool``: one synchronous envpool per device, of that
device's S/D seeds x E emulators (batch = all of them), actions flattened (S/D, E) -> (S/D * E,), one
step, every output reshaped to (S/D, E, ...). Env (i, j) is seeded ``(seed + i) * E + j`` (envpool
seeds env k with its ``seed_base + k``), so seed i of a pool plays exactly the games of a one-seed
pool made with ``seed + i``, on any number of devices. In sync mode envpool returns the envs in
``env_id`` order (tested), so no reordering.

**On a GPU** envpool's XLA step is a custom call that copies the actions to the host, steps the
emulators on the CPU threads and copies the frames back to the device, every step; the network runs on
the GPU. envpool has no TPU step: an Atari run on a TPU is refused.

Observation presets (``obs``), all uint8 channels-last, oldest frame first:

- ``"nature"``: 84x84 grayscale, 4 frames stacked -> (84, 84, 4) (Mnih et al. 2015 as envpool does it);
- ``"ea3c"``: E-A3C / rl_a3c_pytorch: the RGB frame (210x160) cropped to rows 34..193, columns 0..159
  (160x160: rl_a3c_pytorch's default crop, which keeps the play area of all registered games), halved
  to 80x80 by 2x2 means (area resize; the same as bilinear resize for exactly half size) -> (80, 80, 3),
  one frame for the LSTM core;
- ``"ea3c_stack4"``: the same, 4 frames stacked -> (80, 80, 12) (channel 3k + c: frame k, colour c).

All presets train as DQN and A3C did: episodic life (``done`` at every lost life; the emulator plays
on), rewards clipped to their sign for the loss (the true score is ``info["raw_reward"]`` and
``info["episode_return"]``), up to 30 no-ops at reset, FIRE at reset where the game needs it, frame
skip 4 (max of the last two frames), no sticky actions (envpool's "v5" default, unlike Gymnasium ALE
v5's 0.25), games truncated at 27,000 agent steps (108k frames).

``Pool.step`` returns ``(state, obs (S, E, *obs_shape) uint8, reward f32 (clipped), done bool, info)``;
info holds (S, E) arrays: ``episode_end`` (a real game over or the 27k-step limit), ``episode_return``
(that game's true score, 0 elsewhere), ``episode_length`` (its agent steps, 0 elsewhere; envpool's own
``elapsed_step`` skips lost-life steps), ``raw_reward`` (this step's true score), ``lives``,
``reset_step`` (see below) and ``ram`` (S, E, 128) uint8. ``Pool.reset(keys)`` runs on the host and
ignores the keys. ``Pool.options`` records every envpool setting.

**envpool's reset step.** envpool does not reset in the same step: after a real game end (``done``
and ``info["episode_end"]``, the obs showing the game's last frame) the NEXT step ignores its action
and returns the new game's first frame, reward 0. jaxfer marks that step ``info["reset_step"]`` and
reports ``done=True`` there as well, so the transition (last frame -> first frame) never bootstraps
across games (it only teaches that the last frame is worth 0, which it is), and the step after it
starts with ``first=True``. Learners that want to can mask it (its action had no effect). A lost
life has no reset step.

**Frame stacks.** jaxfer stacks the frames itself (envpool gives one, ``stack_num=1``), with one rule:
the observation returned with ``done=True`` (a lost life, a game's end, the reset step) restarts the
stack, every slot holding its newest frame; otherwise the newest frame is shifted in. envpool's own
stacking does the same at a real reset (the first frame repeated, not zeros) but carries the stack
across a lost life; restarting it there too is what DeepMind's DQN did (its history never reached
back past a terminal) and makes "``first`` = previous ``done``" mark every restarted stack, which
frame-once replay (``Env.frame_stack_fill = "repeat"``) relies on. Without lost lives (Pong) the
observations equal envpool's ``stack_num=4`` ones exactly (tested).
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxfer.envs.base import Env, EnvError, Pool

GAMES = {f"atari/{g}": f"{g}-v5" for g in (
    "DemonAttack", "Pong", "Phoenix", "SpaceInvaders", "Seaquest", "Breakout",  # the sources' games
    "BeamRider", "Qbert", "MsPacman", "BankHeist", "Asterix", "Freeway")}
OBS_MODES = ("nature", "ea3c", "ea3c_stack4")


class AtariState(NamedTuple):
    handle: jax.Array  # (devices, 8) uint8: each device's envpool XLA handle, threaded through every step
    stack: jax.Array  # (S, E, *obs_shape) uint8: the last observation (the frame stack)
    episode_return: jax.Array  # (S, E) f32: true (unclipped) score of the running game
    episode_length: jax.Array  # (S, E) int32: agent steps of the running game
    game_over: jax.Array  # (S, E) bool: the last step ended a game, so this one is envpool's reset step


@dataclasses.dataclass(frozen=True)
class Preset:
    frames: int  # frames stacked (by jaxfer, see the module docstring)
    envpool: dict  # envpool.make options (one frame each: stack_num=1)
    crop: tuple | None = None  # (top, bottom, left, right) of envpool's frame, then resized to `size`
    size: int | None = None

    @property
    def channels(self) -> int:  # per frame
        return 1 if self.envpool["gray_scale"] else 3

    @property
    def obs_shape(self) -> tuple:
        side = (self.size, self.size) if self.crop else (self.envpool["img_height"], self.envpool["img_width"])
        return (*side, self.frames * self.channels)


# Settings every preset shares (envpool option names). Stated explicitly although most equal
# envpool 1.2.5's v5 defaults, so a change of envpool's defaults cannot silently change a run.
_COMMON = dict(episodic_life=True, reward_clip=True, noop_max=30, frame_skip=4, repeat_action_probability=0.0,
               use_fire_reset=True, max_episode_steps=27_000, zero_discount_on_life_loss=False,
               full_action_space=False, stack_num=1)
_NATURE = _COMMON | dict(img_height=84, img_width=84, gray_scale=True)
_RGB = _COMMON | dict(img_height=210, img_width=160, gray_scale=False)
EA3C_CROP = (34, 194, 0, 160)  # rows, columns of the 210x160 frame: 160x160 (rl_a3c_pytorch's default crop)
PRESETS = {
    "nature": Preset(4, _NATURE),
    "ea3c": Preset(1, _RGB, EA3C_CROP, 80),
    "ea3c_stack4": Preset(4, _RGB, EA3C_CROP, 80),
}
_MAX_SEED = 2**31  # envpool seeds are int32


def obs_shape(obs: str) -> tuple:
    return PRESETS[obs].obs_shape


@functools.lru_cache(maxsize=None)
def _num_actions(task_id: str) -> int:
    import envpool  # imported here: only Atari needs it

    return int(envpool.make_spec(task_id).action_space.n)


def make_atari(env_id: str, obs: str = "nature") -> Env:
    if obs not in PRESETS:
        raise EnvError(f"unknown obs '{obs}' for {env_id}; allowed: {', '.join(repr(m) for m in OBS_MODES)}")
    task_id = GAMES[env_id]
    # frame-once replay rebuilds single-channel stacks; jaxfer restarts stacks with repeated frames
    fill = "repeat" if PRESETS[obs].channels == 1 and PRESETS[obs].frames > 1 else None
    return Env(id=env_id, num_actions=_num_actions(task_id), obs_shape=obs_shape(obs), obs_dtype=np.uint8,
               make_pool=functools.partial(make_pool, env_id, obs), frame_stack_fill=fill)


def _frame(preset: Preset, num_seeds: int, num_envs: int):
    """envpool's (S*E, c, H, W) uint8 frames -> (S, E, h, w, c) uint8: channels last, cropped, resized."""

    def frame(x):
        x = jnp.moveaxis(jnp.reshape(x, (num_seeds, num_envs, *x.shape[1:])), 2, -1)
        if preset.crop is None:
            return x
        top, bottom, left, right = preset.crop
        x = x[:, :, top:bottom, left:right]
        f = (bottom - top) // preset.size  # area resize: f x f means, rounded (= bilinear for f = 2)
        assert (bottom - top, right - left) == (f * preset.size, f * preset.size)
        x = x.reshape(num_seeds, num_envs, preset.size, f, preset.size, f, -1).astype(jnp.uint16).sum((3, 5))
        return ((x + f * f // 2) // (f * f)).astype(jnp.uint8)

    return frame


def _push(stack, frame, restart):
    """The frame stack after ``frame`` arrives; where ``restart``, every slot holds ``frame``."""
    reps = stack.shape[-1] // frame.shape[-1]
    shifted = jnp.concatenate([stack[..., frame.shape[-1]:], frame], -1)
    return jnp.where(restart[..., None, None, None], jnp.tile(frame, reps), shifted)


def _threads(n: int, pools: int = 1) -> int:
    """Emulator threads of one of ``pools`` pools of ``n`` envs sharing this host's cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(n, cores // pools))


def make_pool(env_id: str, obs: str, num_seeds: int, num_envs: int, seed: int) -> Pool:
    """One synchronous envpool per device of ``mesh.mesh()``; see the module docstring.

    ``num_seeds`` (a multiple of the device count, see ``jaxfer.mesh``) are split into equal blocks,
    device d stepping seeds ``d * S/D ..`` in its own pool (this process makes the pools of its own
    devices only). ``step`` runs on one device's block, inside ``mesh.over_seeds``: with several
    pools in a process it picks its device's pool by ``lax.axis_index`` (``lax.switch``), since envpool
    bakes the pool into the compiled call. Seed i's games are those of seed i alone, whatever D.
    """
    import envpool

    from jaxfer import mesh
    platform = jax.default_backend()
    if platform not in ("cpu", "gpu", "cuda", "rocm"):
        raise EnvError(f"atari/ envs need a CPU or GPU backend (envpool has no {platform} step); "
                       f"run on a CPU or GPU host")
    devices = mesh.device_count()
    if num_seeds % devices:
        raise EnvError(f"{num_seeds} seeds cannot be split over {devices} devices; pad them (jaxfer.mesh.padded)")
    preset, task_id = PRESETS[obs], GAMES[env_id]
    per_device = num_seeds // devices
    n, shape = per_device * num_envs, (per_device, num_envs)
    seed_base = seed * num_envs
    if not (0 <= seed_base and seed_base + num_seeds * num_envs <= _MAX_SEED):
        raise EnvError(f"Atari seeds (seed + i) * num_envs + j must lie in [0, 2^31); got seed {seed}, "
                       f"{num_seeds} seeds x {num_envs} envs")
    positions = mesh.local_positions()
    threads = _threads(n, len(positions))
    pools = [envpool.make(task_id, env_type="gymnasium", num_envs=n, batch_size=n, num_threads=threads,
                          seed=seed_base + d * n, **preset.envpool) for d in positions]
    xla = [p.xla() for p in pools]  # (handle, recv, send, step) each
    frame = _frame(preset, per_device, num_envs)
    first_obs = jax.jit(lambda x: _push(jnp.zeros((*shape, *preset.obs_shape), jnp.uint8), frame(x),
                                        jnp.ones(shape, bool)))

    def reset_one(pool, handle, device):
        o, info = pool.reset()
        order = np.asarray(info["env_id"])
        if not np.array_equal(order, np.arange(n)):  # never seen in sync mode; cheap insurance
            o = o[np.argsort(order)]
        stack = first_obs(jax.device_put(o, device))  # made on its own device
        zeros = np.zeros(shape, np.float32)
        return AtariState(np.asarray(handle)[None], stack, zeros, zeros.astype(np.int32), zeros.astype(bool))

    def reset(keys=None):
        """Host side: (re)starts every game (keys are ignored: envpool seeds itself); global arrays."""
        devices = [mesh.mesh().devices[d] for d in positions]
        state = mesh.assemble([reset_one(p, x[0], d) for p, x, d in zip(pools, xla, devices)])
        return state, jax.jit(jnp.copy)(state.stack)  # a buffer of its own: the epoch donates both

    def xla_step(handle, actions):
        calls = [x[3] for x in xla]
        if len(calls) == 1:
            return calls[0](handle, actions)
        device = jax.lax.axis_index(mesh.AXIS) - positions[0]
        return jax.lax.switch(device, calls, handle, actions)

    def step(state: AtariState, actions):
        new_handle, (o, reward, terminated, truncated, info) = xla_step(
            state.handle[0], jnp.reshape(actions, (n,)).astype(jnp.int32))
        s = lambda x: jnp.reshape(x, shape)  # noqa: E731
        raw, truncated = s(info["reward"]).astype(jnp.float32), s(truncated)
        reset_step = state.game_over  # envpool's delayed reset: action ignored, the new game's first frame
        episode_end = jnp.logical_or(s(info["terminated"]) != 0, truncated)  # a real game over / time limit
        done = s(terminated) | truncated | reset_step  # terminated: a lost life too (episodic life)
        ret = state.episode_return + raw
        length = jnp.where(reset_step, 0, state.episode_length + 1)  # (info["elapsed_step"] skips lost lives)
        stack = _push(state.stack, frame(o), done)
        out = {
            "episode_end": episode_end,
            "episode_return": jnp.where(episode_end, ret, 0.0),
            "episode_length": jnp.where(episode_end, length, 0),
            "raw_reward": raw,
            "lives": s(info["lives"]).astype(jnp.int32),
            "reset_step": reset_step,
            "ram": jnp.reshape(info["ram"], (*shape, -1)),
        }
        new = AtariState(new_handle[None], stack, jnp.where(episode_end, 0.0, ret), jnp.where(episode_end, 0, length),
                         episode_end)
        return new, stack, s(reward).astype(jnp.float32), done, out

    config = pools[0].spec.config._asdict()
    options = {"backend": "envpool", "envpool_version": envpool.__version__, "task_id": task_id,
               "env_type": "gymnasium", "preset": obs, "seed_base": seed_base, "pools": devices,
               "envs_per_pool": n,
               **{k: v for k, v in config.items() if k not in ("base_path", "env_seed", "seed", "num_envs",
                                                                "batch_size")},
               "frames_stacked": preset.frames, "stack_restart": "after every done, older slots = the new frame"}
    if preset.crop:
        options |= {"crop": list(preset.crop), "resize": f"{preset.size}x{preset.size} by area (block means)"}
    return Pool(num_seeds, num_envs, reset, step, checkpointable=False, options=options)
