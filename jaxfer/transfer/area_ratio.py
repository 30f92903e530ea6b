"""Sabatelli's area ratio of learning curves, its bootstrap CI over seeds, the IQM variant, and reading the
authors' .dat curves.

Numpy only, no JAX: these run on a handful of logged curves after training, on any machine; the
statistics (bootstrap, IQM) are ``jaxfer.stats``.

Conventions. A curve is 1-D (epochs,) or 2-D (seeds, epochs). The area ratio follows Sabatelli's thesis
(2022, ch. 8): ``R = (A_transfer - A_scratch) / |A_scratch|`` where ``A`` is the composite trapezoid rule
with unit spacing over the first ``window`` epochs of the SEED-MEAN curve. The thesis divides by
``A_scratch``; with the absolute value R keeps its sign where scores are negative (Pong's returns): a
transfer that learns more than scratch is positive either way. Because the trapezoid rule is
linear, the area of the seed-mean curve equals the mean of the per-seed areas, which the per-seed and
bootstrap functions use.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from jaxfer import stats

__all__ = ["area_under_curve", "area_ratio", "area_ratio_per_seed", "area_ratio_ci", "iqm_area_ratio", "read_dat"]


def _curves(x, name: str) -> np.ndarray:
    """A float array of 1 or 2 dims: anything else is a caller mistake worth a clear error."""
    a = np.asarray(x, dtype=float)
    if a.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (epochs,) or 2-D (seeds, epochs), got shape {a.shape}")
    return a


def _window(a: np.ndarray, window: int | None, name: str) -> np.ndarray:
    """The first ``window`` epochs. Too-short curves raise instead of silently shortening the horizon,
    because areas over different horizons are not comparable."""
    if window is None:
        return a
    window = int(window)
    if window < 2:
        raise ValueError(f"window must be >= 2 epochs (one point has zero area), got {window}")
    if a.shape[-1] < window:
        raise ValueError(f"{name} has {a.shape[-1]} epochs, fewer than window={window}")
    return a[..., :window]


def area_under_curve(curve, window: int | None = None):
    """Composite trapezoid rule with unit spacing over the first ``window`` epochs (all if None).

    Unit spacing (epoch index as x) is what the thesis tables use. 1-D input gives a float; 2-D
    (seeds, epochs) gives one area per row.
    """
    a = _window(_curves(curve, "curve"), window, "curve")
    if a.shape[-1] < 2:
        raise ValueError("a curve needs at least 2 epochs to have an area")
    area = np.trapezoid(a, axis=-1)
    return float(area) if a.ndim == 1 else area


def _mean_curve(a: np.ndarray) -> np.ndarray:
    """Seed mean of a 2-D curve (1-D passes through): the thesis takes A of the seed-mean curve."""
    return a.mean(axis=0) if a.ndim == 2 else a


def _same_length(t: np.ndarray, s: np.ndarray, window: int | None) -> None:
    """Without a window both arms must span the same epochs, or the ratio mixes horizons."""
    if window is None and t.shape[-1] != s.shape[-1]:
        raise ValueError(f"transfer has {t.shape[-1]} epochs, scratch {s.shape[-1]}: pass window=")


def area_ratio(transfer, scratch, window: int | None = None) -> float:
    """Sabatelli's area ratio R = (A_transfer - A_scratch) / |A_scratch| of the seed-mean curves.

    R > 0 means transfer learned faster or better than scratch over the window. The absolute value
    changes nothing for positive curves (Sabatelli's) and keeps that sign on games scored below zero
    (Pong: -21..21). 2-D inputs are averaged over seeds first (definition: area of the SEED-MEAN curve).
    """
    t = _mean_curve(_window(_curves(transfer, "transfer"), window, "transfer"))
    s = _mean_curve(_window(_curves(scratch, "scratch"), window, "scratch"))
    _same_length(t, s, window)
    a_t, a_s = area_under_curve(t), area_under_curve(s)
    return (a_t - a_s) / abs(a_s)


def area_ratio_per_seed(transfer, scratch, window: int | None = None) -> np.ndarray:
    """R of each transfer seed (rows of ``transfer`` (S, E)) against the seed-mean scratch area.

    Shows the spread over transfer seeds with a common denominator; their mean equals ``area_ratio``.
    """
    t = _window(_curves(transfer, "transfer"), window, "transfer")
    t = t[None] if t.ndim == 1 else t
    s = _mean_curve(_window(_curves(scratch, "scratch"), window, "scratch"))
    _same_length(t, s, window)
    a_s = area_under_curve(s)
    return (area_under_curve(t) - a_s) / abs(a_s)


def _relative_gain(centre, transfer_areas, scratch_areas, axis: int = -1):
    """(centre(transfer) - centre(scratch)) / |centre(scratch)| of per-seed areas, ``centre`` a mean or IQM."""
    s = centre(scratch_areas, axis=axis)
    return (centre(transfer_areas, axis=axis) - s) / np.abs(s)


def area_ratio_ci(transfer, scratch, window: int | None = None, n_boot: int = 2000, alpha: float = 0.05,
                  seed: int = 0) -> tuple[float, float, float]:
    """(point, low, high): R of the seed means, with a percentile bootstrap CI over seeds.

    The arms are independent runs, so seeds (rows) of transfer and of scratch are resampled
    independently (``stats.two_sample_ci``); each resample recomputes the ratio of seed-mean areas
    (mean of per-seed areas, by linearity of the trapezoid rule).
    """
    t = _window(_curves(transfer, "transfer"), window, "transfer")
    s = _window(_curves(scratch, "scratch"), window, "scratch")
    t, s = (t[None] if t.ndim == 1 else t), (s[None] if s.ndim == 1 else s)
    _same_length(t, s, window)
    a_t, a_s = area_under_curve(t), area_under_curve(s)
    ratio = functools.partial(_relative_gain, np.mean)
    low, high = stats.two_sample_ci(a_t, a_s, ratio, n_boot=n_boot, alpha=alpha, seed=seed)
    return float(ratio(a_t, a_s)), low, high


def iqm_area_ratio(transfer_areas, scratch_areas, axis: int = -1):
    """The area ratio with the IQM of per-seed areas in place of their mean: one outlier seed moves it less."""
    return _relative_gain(stats.iqm, transfer_areas, scratch_areas, axis)


def read_dat(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a whitespace-separated .dat file with a header row of names (pgfplots style).

    Returns name -> 1-D float array, in header order. Makes no assumption on which columns exist
    (e.g. some files have no ``epochs`` column).
    """
    path = Path(path)
    with path.open() as f:
        header = f.readline().split()
        if not header:
            raise ValueError(f"{path}: empty file or empty header row")
        if len(set(header)) != len(header):
            raise ValueError(f"{path}: duplicate column names in header {header}")
        rows = []
        for lineno, line in enumerate(f, start=2):
            row = line.split()
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}: line {lineno} has {len(row)} fields, header has {len(header)}")
            rows.append(row)
    data = np.array(rows, dtype=float).reshape(len(rows), len(header))
    return {name: data[:, j].copy() for j, name in enumerate(header)}
