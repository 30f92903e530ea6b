"""Automatic per-pixel class labels for game frames: no hand labelling.

Two methods, chosen per game by ``method_for``:

- ``channels`` (MinAtar): the observation channels already are object classes. Class 0 is the
  background (no channel set), channel k is class k + 1. Where several channels are set on one cell
  (Breakout: the ball on the paddle row, the ball on its own trail right after a reset), the LOWEST
  channel index wins (``argmax`` takes the first maximum), i.e. gymnax's channel order is the
  precedence; ``overlap_fraction`` measures how often that rule decides.
- ``palette`` (pixel games, frames only): the background of a game is the per-pixel mode of many
  frames (what a pixel shows most of the time: walls, score-free field, static bricks); a pixel that
  differs from it is foreground and takes the class of the nearest of the game's K most frequent
  foreground colours (``1 .. K``; class 0 = background). K is fixed per game (``num_colours``), so a
  game always has K + 1 classes; colours outside the palette join their nearest palette colour.
  Only the newest frame of a frame stack is labelled (the last ``channels_per_frame`` channels).
"""
from __future__ import annotations

import dataclasses

import chex
import numpy as np

from jaxfer.errors import JaxferError

METHODS = ("channels", "palette")

# MinAtar's object channels in gymnax's order (MinAtar's own ``env.state_channels``): class k + 1 = name k.
CHANNEL_NAMES = {
    "minatar/Breakout": ("paddle", "ball", "trail", "brick"),
    "minatar/SpaceInvaders": ("cannon", "alien", "alien_left", "alien_right", "friendly_bullet", "enemy_bullet"),
    "minatar/Seaquest": ("sub_front", "sub_back", "friendly_bullet", "trail", "enemy_bullet", "enemy_fish",
                         "enemy_sub", "oxygen_gauge", "diver_gauge", "diver"),
    "minatar/Asterix": ("player", "enemy", "trail", "gold"),
    "minatar/Freeway": ("chicken", "car", "speed_1", "speed_2", "speed_3", "speed_4", "speed_5"),
}


class LabelError(JaxferError):
    """A game or setting no label method covers: the message is one line naming the problem."""


def method_for(env_id: str, method: str = "auto") -> str:
    """The label method of a game: ``auto`` picks ``channels`` on MinAtar and ``palette`` on Atari."""
    backend = env_id.split("/")[0]
    allowed = {"minatar": ("channels", "palette"), "atari": ("palette",)}.get(backend, ())
    if method == "auto" and allowed:
        return allowed[0]
    if method not in METHODS and method != "auto":
        raise LabelError(f"unknown label method '{method}'; known: auto, {', '.join(METHODS)}")
    if method not in allowed:
        have = f"only {', '.join(allowed)}" if allowed else "none (labels need MinAtar object channels or Atari pixels)"
        raise LabelError(f"no label method '{method}' for {env_id}: its label methods are {have}")
    return method


def channel_labels(obs: np.ndarray) -> np.ndarray:
    """(N, H, W, C) object-channel observations -> (N, H, W) int32 classes 0..C (lowest channel wins)."""
    chex.assert_rank(obs, 4)
    on = obs > 0
    return np.where(on.any(-1), on.argmax(-1) + 1, 0).astype(np.int32)


def overlap_fraction(obs: np.ndarray) -> float:
    """Share of foreground pixels where more than one object channel is set (decided by precedence)."""
    count = (obs > 0).sum(-1)
    return float((count > 1).sum() / max((count > 0).sum(), 1))


def _codes(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, c) uint8 colours -> (N, H, W) int64 codes, one per distinct colour."""
    weights = 256 ** np.arange(frames.shape[-1], dtype=np.int64)
    return frames.astype(np.int64) @ weights


def _decode(codes: np.ndarray, c: int) -> np.ndarray:
    return ((codes[..., None] // 256 ** np.arange(c)) % 256).astype(np.uint8)


def pixel_mode(frames: np.ndarray) -> np.ndarray:
    """Per-pixel most frequent colour of (N, H, W, c) uint8 frames -> (H, W, c); ties go to the smaller code."""
    chex.assert_rank(frames, 4)
    n, h, w, c = frames.shape
    s = np.sort(_codes(frames).reshape(n, h * w), axis=0)
    starts = np.ones_like(s, dtype=bool)
    starts[1:] = s[1:] != s[:-1]
    run_start = np.maximum.accumulate(np.where(starts, np.arange(n)[:, None], 0), axis=0)
    run_length = np.arange(n)[:, None] - run_start + 1  # at the last element of a run: its length
    mode = s[run_length.argmax(0), np.arange(h * w)]
    return _decode(mode.reshape(h, w), c)


@dataclasses.dataclass(frozen=True)
class Palette:
    """A game's frames-only labeller: its background image and its K foreground colours."""

    background: np.ndarray  # (H, W, c) uint8
    colours: np.ndarray  # (K, c) uint8, most frequent foreground colour first

    @property
    def num_classes(self) -> int:
        return len(self.colours) + 1

    def labels(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, c) uint8 frames -> (N, H, W) int32: 0 where a pixel shows the background, else
        1 + index of the nearest palette colour."""
        chex.assert_rank(frames, 4)
        chex.assert_equal(frames.shape[1:], self.background.shape)
        x = frames.astype(np.int32)
        foreground = (x != self.background).any(-1)
        dist = ((x[..., None, :] - self.colours.astype(np.int32)) ** 2).sum(-1)
        return np.where(foreground, dist.argmin(-1) + 1, 0).astype(np.int32)


def fit_palette(frames: np.ndarray, num_colours: int) -> Palette:
    """Background = per-pixel mode of ``frames`` (N, H, W, c); palette = the ``num_colours`` most
    frequent colours among foreground pixels (fewer if the frames hold fewer; then padded by
    repeating the last one, so the class count stays fixed and the extra classes stay empty)."""
    if num_colours < 1:
        raise LabelError(f"num_colours must be >= 1, got {num_colours}")
    background = pixel_mode(frames)
    foreground = (frames != background).any(-1)
    codes, counts = np.unique(_codes(frames)[foreground], return_counts=True)
    if codes.size == 0:
        raise LabelError("the frames never differ from their per-pixel mode: nothing to label")
    top = codes[np.argsort(-counts, kind="stable")[:num_colours]]
    top = np.concatenate([top, np.repeat(top[-1:], num_colours - top.size)])
    return Palette(background, _decode(top, frames.shape[-1]))


def newest_frame(obs: np.ndarray, channels_per_frame: int) -> np.ndarray:
    """The newest frame of stacked observations (oldest first): the last ``channels_per_frame`` channels."""
    return obs[..., -channels_per_frame:]


def agreement(labels_a: np.ndarray, labels_b: np.ndarray) -> dict:
    """How well one labelling reproduces another whose class numbers differ: each class of ``a``
    is mapped to the class of ``b`` it overlaps most, then pixel accuracy; plus the IoU of the two
    foregrounds (class > 0). Used to check frames-only labels against MinAtar's object channels."""
    chex.assert_equal_shape((labels_a, labels_b))
    a, b = labels_a.ravel(), labels_b.ravel()
    joint = np.zeros((a.max() + 1, b.max() + 1), np.int64)
    np.add.at(joint, (a, b), 1)
    mapped = joint.argmax(1)[a]
    fa, fb = a > 0, b > 0
    return {"pixel_accuracy": float((mapped == b).mean()),
            "foreground_iou": float((fa & fb).sum() / max((fa | fb).sum(), 1)),
            "class_map": joint.argmax(1).tolist()}
