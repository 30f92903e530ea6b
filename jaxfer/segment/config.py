"""``jaxfer segment`` configs: what to label and segment, how to train the FCN, which DDQNs to train.

A YAML mapping of the ``SegmentConfig`` keys; ``fcn`` and ``ddqn`` are sections (``ddqn: null`` or
absent: segmentation only). ``ddqn.train`` is a ``jaxfer.config.TrainConfig`` (env and obs default
to the segmented game's). Every mistake is a one-line ``SegmentError``.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from jaxfer import config, envs
from jaxfer.errors import ConfigError, JaxferError
from jaxfer.segment import labels

VARIANTS = ("frozen", "fine_tune", "scratch", "baseline")


class SegmentError(JaxferError):
    """A user mistake in a segmentation request: the message is one line naming the problem."""


@dataclasses.dataclass(frozen=True)
class FCNConfig:
    seeds: int = 5  # FCNs trained at once (vmapped); DDQN seed i starts from FCN seed i
    seed: int = 0  # FCN seed i initialises and shuffles with PRNGKey(seed + i)
    epochs: int = 10  # passes over the training frames
    batch_size: int = 64  # frames per Adam step
    lr: float = 1e-3  # Adam step size (the seed's 0.001)


@dataclasses.dataclass(frozen=True)
class DDQNConfig:
    variants: tuple[str, ...] = VARIANTS  # any of: frozen, fine_tune (FCN trunk), scratch (same net), baseline
    baseline_network: str = "minatar_cnn"  # the seed's original scratch DDQN (nature_cnn on 84x84 frames)
    window: int | None = None  # epochs the area ratio integrates (None: all)
    train: config.TrainConfig = dataclasses.field(
        default_factory=lambda: config.TrainConfig(network="seg_ddqn", double=True))


@dataclasses.dataclass(frozen=True)
class SegmentConfig:
    env: str = "minatar/Breakout"  # the game whose frames are segmented
    obs: str = "grid"  # its observation mode: the FCN sees what the agent sees
    labels: str = "auto"  # "auto", "channels" (MinAtar object channels) or "palette" (frames only)
    num_colours: int = 6  # palette labels: foreground colours per game (classes = num_colours + 1)
    frames: int = 20_000  # random-policy frames collected (labelled automatically)
    frames_seed: int = 0  # seeds the envs and the random policy
    test_fraction: float = 0.2  # the last part of the rollout, held out for accuracy / IoU
    fcn: FCNConfig = FCNConfig()
    fcn_checkpoint: str | None = None  # a `jaxfer segment` output (or its fcn/fcn.npz) to use instead of training
    grid_frames: int = 6  # rows of segmentation_grid.png
    ddqn: DDQNConfig | None = None  # train the Double DQN variants after the FCN

    @property
    def label_method(self) -> str:
        return labels.method_for(self.env, self.labels)


def _section(cls, raw, where: str) -> dict:
    return config.section(cls, raw, where, SegmentError)


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise SegmentError(msg)


def _int(value, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _ddqn(raw, env: str, obs: str) -> DDQNConfig:
    raw = dict(_section(DDQNConfig, raw, "ddqn"))
    variants = raw.get("variants", list(VARIANTS))
    _check(isinstance(variants, list) and variants and all(v in VARIANTS for v in variants),
           f"ddqn.variants must be a non-empty list of {', '.join(VARIANTS)}, got {variants!r}")
    _check(not config.repeated(variants), f"ddqn.variants lists {', '.join(config.repeated(variants))} more than once")
    train = {"env": env, "obs": obs, "network": "seg_ddqn", "double": True} | (raw.pop("train", None) or {})
    try:
        train = config.from_dict(train)  # the training config's own parser: it also checks values
    except ConfigError as e:
        raise SegmentError(f"ddqn.train: {e}") from None
    spec = dataclasses.replace(config.parse(DDQNConfig, raw, "ddqn", SegmentError), train=train)
    _check(spec.train.agent == "dqn" and spec.train.double,
           "ddqn.train must be a Double DQN (agent: dqn, double: true)")
    _check(spec.window is None or _int(spec.window, 2),
           f"ddqn.window must be an integer >= 2 or null, got {spec.window!r}")
    from jaxfer.networks import q_nets
    _check(spec.baseline_network in q_nets.NETWORKS,
           f"unknown ddqn.baseline_network '{spec.baseline_network}'; known: {', '.join(q_nets.NETWORKS)}")
    return spec


def from_dict(raw: dict, where: str = "segment config") -> SegmentConfig:
    raw = dict(_section(SegmentConfig, raw or {}, where))
    ddqn = raw.pop("ddqn", None)  # parsed below: its training config depends on env and obs
    cfg = config.parse(SegmentConfig, raw, where, SegmentError)
    env, obs = cfg.env, cfg.obs
    _check(env in envs.ENV_IDS, f"unknown env id '{env}'; known: {', '.join(envs.known_env_ids())}")
    _check(obs in envs.obs_modes(env), f"unknown obs '{obs}' for {env}; allowed: {', '.join(envs.obs_modes(env))}")
    if ddqn is not None:
        cfg = dataclasses.replace(cfg, ddqn=_ddqn(ddqn, env, obs))
    try:
        labels.method_for(cfg.env, cfg.labels)
    except labels.LabelError as e:
        raise SegmentError(str(e)) from None
    for name, value, least in (("frames", cfg.frames, 2), ("frames_seed", cfg.frames_seed, 0),
                               ("num_colours", cfg.num_colours, 1), ("grid_frames", cfg.grid_frames, 1),
                               ("fcn.seeds", cfg.fcn.seeds, 1), ("fcn.seed", cfg.fcn.seed, 0),
                               ("fcn.epochs", cfg.fcn.epochs, 1), ("fcn.batch_size", cfg.fcn.batch_size, 1)):
        _check(_int(value, least), f"{name} must be an integer >= {least}, got {value!r}")
    _check(isinstance(cfg.test_fraction, float) and 0 < cfg.test_fraction < 1,
           f"test_fraction must be a number in (0, 1), got {cfg.test_fraction!r}")
    _check(isinstance(cfg.fcn.lr, (int, float)) and cfg.fcn.lr > 0, f"fcn.lr must be > 0, got {cfg.fcn.lr!r}")
    n_train = cfg.frames - int(cfg.frames * cfg.test_fraction)
    _check(int(cfg.frames * cfg.test_fraction) >= 1 and n_train >= cfg.fcn.batch_size,
           f"{cfg.frames} frames with test_fraction {cfg.test_fraction} leave no test frame or fewer training "
           f"frames than fcn.batch_size ({cfg.fcn.batch_size})")
    _check(cfg.ddqn is None or cfg.fcn_checkpoint is not None or cfg.fcn.seeds >= cfg.ddqn.train.seeds,
           f"fcn.seeds ({cfg.fcn.seeds}) must be >= ddqn.train.seeds ({cfg.ddqn and cfg.ddqn.train.seeds}): "
           "DDQN seed i starts from FCN seed i")
    return cfg


def load(path: str | Path) -> SegmentConfig:
    return from_dict(config.read_yaml(path, "segment config", SegmentError), f"segment config '{path}'")


def to_dict(cfg: SegmentConfig) -> dict:
    """Plain YAML/JSON types (tuples as lists), so a saved config compares equal once read back."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))
