"""``jaxfer dptl`` and ``jaxfer gradcam``: DPTL scores of one source model on target games, and
what an agent attends to over an episode.

A source is a jaxfer run directory: ``params.npz`` (seed axis first) and ``config.yaml``, whose
network, env and observation mode say how to rebuild the network and how to preprocess targets.
Targets are played in the source's observation mode, so a target whose observations have another
shape cannot be scored (one-line error). Score of a target = mean over frames of SSIM(CAM of the
source on the frame, locally adaptive threshold mask of the frame), with a bootstrap CI over
frames; with several source seeds, each frame's SSIM is first averaged over the seeds' models.
Outputs: ``scores.csv`` (target, score, ci_low, ci_high, rank, frames), ``summary.json`` and
``grid_<target>.png`` (frame | threshold mask | CAM overlay for a few frames).
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from jaxfer import config, envs  # noqa: E402
from jaxfer.code_path import CodePath  # noqa: E402
from jaxfer.dptl import frames, gradcam, similarity  # noqa: E402
from jaxfer.errors import (
    JaxferError,  # noqa: E402
)
from jaxfer.networks import actor_critic, q_nets  # noqa: E402
from jaxfer.runtime import budget, files, run, rundir  # noqa: E402

MAX_EPISODE_STEPS = 1000  # `jaxfer gradcam` without --steps: one game, at most this long


class DPTLError(JaxferError):
    """A user mistake in a DPTL or Grad-CAM request: the message is one line naming the problem."""


@dataclasses.dataclass(frozen=True)
class Threshold:
    block_size: int = 35  # odd side of the local neighbourhood, in pixels of the compared image
    offset: float = 0.0  # subtracted from the local mean
    method: str = "gaussian"  # local mean weighting: "gaussian" or "mean"


@dataclasses.dataclass(frozen=True)
class Bootstrap:
    samples: int = 2000  # resamples of the frames for the CI
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class DPTLConfig:
    source: str  # a jaxfer run directory (or its params.npz)
    targets: tuple[str, ...]  # env ids, played in the source's observation mode
    source_seed: int | str = 0  # which seed of the run: an index, or "all" (per-frame SSIM averaged over seeds)
    frames: int = 1000  # frames per target
    frames_seed: int = 0  # seeds the envs and the random policy
    policy: str = "random"  # "random", or a run directory whose greedy agent (seed 0) plays the targets
    layer: str | None = None  # conv layer of the CAM (default: the network's last conv layer)
    method: str = "gradcam"  # "gradcam", "gradcam++" or "eigencam"
    size: int = 84  # CAMs and frames compared at size x size (SSIM's window is 11x11)
    threshold: Threshold = Threshold()
    bootstrap: Bootstrap = Bootstrap()
    grid_frames: int = 4  # rows of each grid_<target>.png
    cache: str = "runs/frames"  # where collected frames are kept (one .npz per game and setting)


def _section(cls, raw, where: str) -> dict:
    return config.section(cls, raw, where, DPTLError)


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise DPTLError(msg)


def load(path: str | Path) -> DPTLConfig:
    """Read and validate a DPTL config (YAML); every mistake is a one-line DPTLError."""
    raw = config.read_yaml(path, "DPTL config", DPTLError)
    raw = dict(_section(DPTLConfig, raw or {}, f"DPTL config '{path}'"))
    _check(isinstance(raw.get("source"), str),
           f"DPTL config '{path}': 'source' (the path of a jaxfer run directory) is required")
    targets = raw.get("targets")
    _check(isinstance(targets, list) and len(targets) > 0 and all(isinstance(t, str) for t in targets),
           f"DPTL config '{path}': 'targets' must be a non-empty list of env ids")
    cfg = config.parse(DPTLConfig, raw, f"DPTL config '{path}'", DPTLError)
    _check(not config.repeated(cfg.targets),
           f"DPTL config '{path}': 'targets' lists {', '.join(config.repeated(cfg.targets))} more than once")
    counts = {"frames": (cfg.frames, 1), "size": (cfg.size, 11), "grid_frames": (cfg.grid_frames, 1),
              "bootstrap.samples": (cfg.bootstrap.samples, 1), "frames_seed": (cfg.frames_seed, 0),
              "bootstrap.seed": (cfg.bootstrap.seed, 0)}
    for name, (value, least) in counts.items():  # size >= 11: SSIM's window
        _check(isinstance(value, int) and not isinstance(value, bool) and value >= least,
               f"{name} must be an integer >= {least}, got {value!r}")
    _check(cfg.source_seed == "all" or (isinstance(cfg.source_seed, int) and cfg.source_seed >= 0),
           f"source_seed must be a seed index >= 0 or 'all', got {cfg.source_seed!r}")
    gradcam.check_method(cfg.method)
    t = cfg.threshold
    _check(isinstance(t.block_size, int) and t.block_size >= 3 and t.block_size % 2 == 1,
           f"threshold.block_size must be an odd integer >= 3, got {t.block_size!r}")
    _check(t.method in ("gaussian", "mean"), f"threshold.method must be 'gaussian' or 'mean', got {t.method!r}")
    _check(isinstance(t.offset, (int, float)), f"threshold.offset must be a number, got {t.offset!r}")
    return cfg


@dataclasses.dataclass(frozen=True)
class Source:
    """A trained agent's acting network (Q-network, or an actor-critic's actor), rebuilt from its run
    directory."""

    run_dir: Path
    cfg: config.TrainConfig
    env: envs.Env
    net: object  # a q_nets.ConvQNet or actor_critic.ActorCritic: apply(params, obs) -> Q or logits
    params: dict  # seed axis first

    @property
    def num_seeds(self) -> int:
        return len(jax.tree.leaves(self.params)[0])

    def seed_params(self, index: int):
        _check(0 <= index < self.num_seeds,
               f"{self.run_dir} holds {self.num_seeds} seeds; seed index {index} is out of range")
        return jax.tree.map(lambda x: x[index], self.params)


def load_source(path: str | Path) -> Source:
    """The acting network of a run directory (``path`` may also name its params.npz)."""
    run = rundir.load_finished(path, DPTLError)
    code = CodePath.from_config(run.cfg)
    net = (actor_critic.from_config(run.cfg, run.env.num_actions, code) if run.cfg.agent == "a2c"  # the actor's
           else q_nets.make_network(run.cfg.network, run.env.num_actions, code))  # logits stand for Q
    acting = run.params["q"] if run.cfg.agent in ("dqv", "dqv_max") else run.params  # DQV: {"q": ..., "v": ...}
    run_dir = Path(path).parent if Path(path).name == rundir.PARAMS else Path(path)
    return Source(run_dir, run.cfg, run.env, net, acting)


def target_env(source: Source, env_id: str) -> envs.Env:
    """``env_id`` in the source's observation mode; its observations must fit the source network."""
    try:
        env = envs.make(env_id, source.cfg.obs)
    except envs.EnvError as e:
        raise DPTLError(f"target '{env_id}': {e}") from None
    _check(env.obs_shape == source.env.obs_shape,
           f"target '{env_id}' gives observations of shape {env.obs_shape} ({source.cfg.obs}), but the source "
           f"network ({source.cfg.network}, trained on {source.cfg.env}) takes {source.env.obs_shape}")
    return env


def screens(obs, env_id: str, obs_mode: str, size: int) -> jax.Array:
    """The pictures of observations (N, ...) at size x size, bilinear, in [0, 1]."""
    pictures = frames.screen(obs, env_id, obs_mode)
    return jnp.clip(jax.image.resize(pictures, (len(pictures), size, size), "bilinear"), 0.0, 1.0)


def overlay(picture, cam, alpha: float = 0.5) -> np.ndarray:
    """RGB uint8 of a grayscale picture with a CAM drawn over it in the jet colour map."""
    gray = np.repeat(np.asarray(picture, np.float32)[..., None], 3, axis=-1)
    heat = matplotlib.colormaps["jet"](np.asarray(cam))[..., :3]
    return np.clip(255 * ((1 - alpha) * gray + alpha * heat), 0, 255).astype(np.uint8)


def grid_png(path: Path, pictures, masks, cams, ssims, title: str) -> None:
    """One row per frame: frame | threshold mask | CAM overlay (with that frame's SSIM)."""
    n = len(pictures)
    fig, axes = plt.subplots(n, 3, figsize=(6.6, 2.3 * n + 0.4), squeeze=False)
    for i in range(n):
        for ax, img, name in zip(axes[i], (pictures[i], masks[i], overlay(pictures[i], cams[i])),
                                 ("frame", "threshold mask", f"CAM, SSIM {ssims[i]:.3f}")):
            gray = {"cmap": "gray", "vmin": 0, "vmax": 1} if np.ndim(img) == 2 else {}
            ax.imshow(img, interpolation="nearest", **gray)
            ax.set_title(name, fontsize=8)
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=110)


def _policy(cfg: DPTLConfig, target_envs: dict) -> frames.Policy | None:
    """None (random actions) or the greedy agent of the run named by ``policy``, checked against
    every target: it must see the same observations and have the same actions."""
    if cfg.policy == "random":
        return None
    player = load_source(cfg.policy)
    for env_id, env in target_envs.items():
        _check(player.env.obs_shape == env.obs_shape and player.env.num_actions == env.num_actions,
               f"policy {cfg.policy} ({player.cfg.env}: obs {player.env.obs_shape}, {player.env.num_actions} actions) "
               f"cannot play '{env_id}' (obs {env.obs_shape}, {env.num_actions} actions)")
    return frames.greedy_policy(player.net, player.seed_params(0))


def check_memory(cfg: DPTLConfig, source: Source, models: int) -> None:
    """Refuse, before any frame is played, a target's frames, pictures and maps (one per model) that
    do not fit in memory, with the SSIM's size x size Gaussian matrices."""
    pixels = cfg.size * cfg.size
    need = cfg.frames * (math.prod(source.env.obs_shape) + 4 * pixels * (models + 2)) + 2 * 8 * pixels
    budget.require(need, f"DPTL on {cfg.frames} frames of {cfg.size}x{cfg.size} per target", "frames or size",
                   free=(budget.available()[0], 1), error=DPTLError)


CLAIM = "dptl.yaml"  # what a DPTL directory holds: its resolved config, written first


def run_dptl(cfg: DPTLConfig, out: Path, progress: bool = True) -> list[dict]:
    """Score every target; writes dptl.yaml (another config there is refused), scores.csv, summary.json and
    grid_<target>.png into ``out``. Every input is checked before any frame is played."""
    source = load_source(cfg.source)
    layer = gradcam.resolve_layer(source.params, cfg.layer, source.cfg.network)
    seeds = list(range(source.num_seeds)) if cfg.source_seed == "all" else [cfg.source_seed]
    models = [source.seed_params(i) for i in seeds]
    target_envs = {t: target_env(source, t) for t in dict.fromkeys(cfg.targets)}
    check_memory(cfg, source, len(models))
    policy = _policy(cfg, target_envs)
    th = cfg.threshold
    out = Path(out)
    rundir.claim(out, dataclasses.asdict(cfg), "DPTL", CLAIM, lambda name: name in ("scores.csv", "summary.json")
                 or name.startswith("grid_") and name.endswith(".png"))
    rows, seconds = [], {"frames": 0.0, "scoring": 0.0}
    for target in tqdm(target_envs, desc="DPTL targets", unit="target", disable=not progress):
        tick = time.perf_counter()
        obs = frames.collect(target, source.cfg.obs, cfg.frames, cfg.frames_seed, policy, Path(cfg.cache))
        seconds["frames"] += time.perf_counter() - tick
        tick = time.perf_counter()
        pictures = screens(obs, target, source.cfg.obs, cfg.size)
        maps = [gradcam.cams(source.net, p, obs, layer, method=cfg.method, size=(cfg.size, cfg.size)) for p in models]
        per_seed = np.stack([similarity.frame_scores(m, pictures, th.block_size, th.method, th.offset,
                                                     source.net.path) for m in maps])
        summary = similarity.summarise(per_seed.mean(axis=0), cfg.bootstrap.samples, cfg.bootstrap.seed)
        seconds["scoring"] += time.perf_counter() - tick
        rows.append({"target": target, "score": round(summary["score"], 4), "ci_low": round(summary["ci_low"], 4),
                     "ci_high": round(summary["ci_high"], 4), "frames": summary["frames"],
                     "per_seed": [round(float(s), 4) for s in per_seed.mean(axis=1)]})
        shown = np.linspace(0, len(obs) - 1, min(cfg.grid_frames, len(obs))).astype(int)
        grid_png(out / f"grid_{rundir.slug(target)}.png", np.asarray(pictures[shown]),
                 np.asarray(similarity.threshold_mask(pictures[shown], th.block_size, th.method, th.offset)),
                 np.asarray(maps[0][shown]), per_seed[0][shown],
                 f"{source.cfg.env} model (seed {seeds[0]}, {layer}, {cfg.method}) on {target}: "
                 f"DPTL {summary['score']:.3f}")
    order = sorted(range(len(rows)), key=lambda i: -rows[i]["score"])
    for rank, i in enumerate(order, start=1):
        rows[i]["rank"] = rank
    files.write_csv(out / "scores.csv", [{k: r[k] for k in ("target", "score", "ci_low", "ci_high", "rank", "frames")}
                                      for r in rows])
    files.write_json(out / "summary.json", {
        "config": dataclasses.asdict(cfg),
        "source": {"run": str(source.run_dir), "env": source.cfg.env, "obs": source.cfg.obs,
                   "network": source.cfg.network, "agent": source.cfg.agent, "seeds": seeds},
        "layer": layer, "method": cfg.method, "policy": "random" if policy is None else policy.tag,
        "scores": rows, "seconds": {k: round(v, 2) for k, v in seconds.items()}, **run.environment_info()})
    return rows


def gradcam_episode(checkpoint: str | Path, game: str, out: Path, steps: int | None = None, seed_index: int = 0,
                    layer: str | None = None, method: str = "gradcam", size: int = 84, seed: int = 0,
                    strip_frames: int = 12) -> dict:
    """The source's greedy agent plays ``game`` (one game, or ``steps`` steps); writes a PNG strip of
    frames with the CAM drawn over them and an animated GIF of every step. Returns the paths."""
    source = load_source(checkpoint)
    env = target_env(source, game)
    _check(env.num_actions == source.env.num_actions,
           f"the agent has {source.env.num_actions} actions and '{game}' {env.num_actions}: it cannot play it")
    gradcam.check_method(method)
    _check(steps is None or steps >= 1, f"--steps must be >= 1, got {steps}")
    _check(size >= 1, f"--size must be >= 1, got {size}")
    params = source.seed_params(seed_index)
    layer = gradcam.resolve_layer(source.params, layer, source.cfg.network)
    policy = frames.greedy_policy(source.net, params)
    if steps is None:
        obs = frames.episode(env, policy, MAX_EPISODE_STEPS, seed)
    else:
        obs = frames.rollout(env, steps, 1, seed, policy)[0][:, 0]
    maps = np.asarray(gradcam.cams(source.net, params, obs, layer, method=method, size=(size, size)))
    pictures = np.asarray(screens(obs, game, source.cfg.obs, size))
    images = [overlay(p, m) for p, m in zip(pictures, maps)]
    name = f"{source.run_dir.name}__{rundir.slug(game)}"
    shown = np.linspace(0, len(images) - 1, min(strip_frames, len(images))).astype(int)
    fig, axes = plt.subplots(1, len(shown), figsize=(1.6 * len(shown) + 0.4, 2.2), squeeze=False)
    for ax, t in zip(axes[0], shown):
        ax.imshow(images[t], interpolation="nearest")
        ax.set_title(f"t={t}", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{source.cfg.env} agent (seed {seed_index}) on {game}: {method} of {layer}, {len(images)} steps",
                 fontsize=9)
    fig.tight_layout()
    out = Path(out)
    files.save_figure(fig, out / f"{name}.png", dpi=110)
    files.save_gif(out / f"{name}.gif", images)
    return {"png": out / f"{name}.png", "gif": out / f"{name}.gif", "steps": len(images), "layer": layer}
