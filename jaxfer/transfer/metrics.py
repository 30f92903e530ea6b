"""Transfer metrics on learning curves: area ratio, bootstrap CIs, IQM, probability of improvement, rank
correlations, .dat reading.

Numpy and scipy, no JAX: these run on a handful of logged curves after training, on any machine.

Conventions. A curve is 1-D (epochs,) or 2-D (seeds, epochs). The area ratio follows Sabatelli's thesis
(2022, ch. 8): ``R = (A_transfer - A_scratch) / |A_scratch|`` where ``A`` is the composite trapezoid rule
with unit spacing over the first ``window`` epochs of the SEED-MEAN curve. The thesis divides by
``A_scratch``; with the absolute value R keeps its sign where scores are negative (Pong's returns): a
transfer that learns more than scratch is positive either way. Because the trapezoid rule is
linear, the area of the seed-mean curve equals the mean of the per-seed areas, which the per-seed and
bootstrap functions use.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.stats

__all__ = [
    "area_under_curve", "area_ratio", "area_ratio_per_seed", "bootstrap_ci", "area_ratio_ci",
    "iqm", "probability_of_improvement", "two_sample_ci", "iqm_area_ratio", "mean_band", "spearman", "kendall_tau",
    "rank_correlation_ci", "read_dat",
]


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


def _check_alpha(alpha: float, n_boot: int) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")


def bootstrap_ci(samples, statistic: Callable = np.mean, n_boot: int = 2000, alpha: float = 0.05,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) CI of ``statistic`` over ``samples`` (rows resampled).

    Percentile intervals need no normality assumption, which few seeds cannot support. Seeded so
    reports are reproducible.
    """
    _check_alpha(alpha, n_boot)
    x = np.asarray(samples, dtype=float)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError("bootstrap_ci needs at least one sample")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(int(n_boot), len(x)))
    stats = np.array([statistic(x[i]) for i in idx], dtype=float)
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def area_ratio_ci(transfer, scratch, window: int | None = None, n_boot: int = 2000, alpha: float = 0.05,
                  seed: int = 0) -> tuple[float, float, float]:
    """(point, low, high): R of the seed means, with a percentile bootstrap CI over seeds.

    The arms are independent runs, so seeds (rows) of transfer and of scratch are resampled
    independently; each resample recomputes the ratio of seed-mean areas (mean of per-seed areas,
    by linearity of the trapezoid rule).
    """
    _check_alpha(alpha, n_boot)
    t = _window(_curves(transfer, "transfer"), window, "transfer")
    s = _window(_curves(scratch, "scratch"), window, "scratch")
    t, s = (t[None] if t.ndim == 1 else t), (s[None] if s.ndim == 1 else s)
    _same_length(t, s, window)
    a_t, a_s = area_under_curve(t), area_under_curve(s)
    point = (a_t.mean() - a_s.mean()) / abs(a_s.mean())
    rng = np.random.default_rng(seed)
    bt = a_t[rng.integers(0, len(a_t), size=(int(n_boot), len(a_t)))].mean(axis=1)
    bs = a_s[rng.integers(0, len(a_s), size=(int(n_boot), len(a_s)))].mean(axis=1)
    low, high = np.quantile((bt - bs) / np.abs(bs), [alpha / 2, 1 - alpha / 2])
    return float(point), float(low), float(high)


def iqm(x, axis=None):
    """Interquartile mean: mean of the middle 50% of the values (all of them flattened where ``axis`` is
    None), as rliable reports: robust to outlier seeds yet less noisy than the median. It is
    ``scipy.stats.trim_mean(x, 0.25)``: ``int(0.25 * n)`` values dropped at each end."""
    a = np.asarray(x, dtype=float)
    if a.size == 0:
        raise ValueError("iqm of an empty array")
    return scipy.stats.trim_mean(a, 0.25, axis=axis)


def probability_of_improvement(x, y, axis: int = -1):
    """P(X > Y) + P(X = Y) / 2 over every pair of a run of X and a run of Y (rliable's definition; the
    Mann-Whitney U statistic divided by n * m): 0.5 where neither arm is better."""
    a, b = np.moveaxis(np.asarray(x, float), axis, -1), np.moveaxis(np.asarray(y, float), axis, -1)
    greater = a[..., :, None] > b[..., None, :]
    ties = a[..., :, None] == b[..., None, :]
    return (greater + 0.5 * ties).mean(axis=(-2, -1))


def two_sample_ci(x, y, statistic: Callable, n_boot: int = 2000, alpha: float = 0.05,
                  seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) CI of ``statistic(x, y, axis)`` for two independent sets of runs:
    each set's runs resampled on their own (rliable's stratified bootstrap, one stratum per arm)."""
    _check_alpha(alpha, n_boot)
    result = scipy.stats.bootstrap((np.asarray(x, float), np.asarray(y, float)), statistic, n_resamples=int(n_boot),
                                   confidence_level=1 - alpha, method="percentile", vectorized=True,
                                   rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def iqm_area_ratio(transfer_areas, scratch_areas, axis: int = -1):
    """The area ratio with the IQM of per-seed areas in place of their mean: one outlier seed moves it less."""
    s = iqm(scratch_areas, axis=axis)
    return (iqm(transfer_areas, axis=axis) - s) / np.abs(s)


def mean_band(values, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0):
    """(mean, low, high) per epoch of (seeds, epochs) values: the seed mean and its percentile bootstrap
    (1 - alpha) CI over seeds. One seed has no band (low = high = mean)."""
    _check_alpha(alpha, n_boot)
    a = _curves(values, "values")
    a = a[None] if a.ndim == 1 else a
    mean = a.mean(axis=0)
    if len(a) < 2:
        return mean, mean, mean
    ci = scipy.stats.bootstrap((a,), np.mean, axis=0, n_resamples=int(n_boot), confidence_level=1 - alpha,
                               method="percentile", rng=np.random.default_rng(seed)).confidence_interval
    return mean, ci.low, ci.high


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if a.size != b.size:
        raise ValueError(f"x and y differ in length: {a.size} vs {b.size}")
    return a, b


def _rank_statistic(x, y, fn) -> float:
    a, b = _pair(x, y)
    if a.size < 2 or np.isnan(a).any() or np.isnan(b).any() or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(fn(a, b).statistic)


def spearman(x, y) -> float:
    """Spearman rank correlation (``scipy.stats.spearmanr``, ties ranked by their average): does a
    predictor order targets right? NaN when fewer than 2 points, any value is NaN, or either input is
    constant (undefined)."""
    return _rank_statistic(x, y, scipy.stats.spearmanr)


def kendall_tau(x, y) -> float:
    """Kendall's tau-b (``scipy.stats.kendalltau``): pairwise order agreement, corrected for ties.
    NaN when fewer than 2 points, any value is NaN, or either input is constant."""
    return _rank_statistic(x, y, scipy.stats.kendalltau)


def rank_correlation_ci(scores, transfer_areas, scratch_areas, statistic: Callable = spearman, n_boot: int = 2000,
                        alpha: float = 0.05, seed: int = 0, versus=None) -> tuple[float, float, float]:
    """(point, low, high): a rank correlation between a transfer predictor and the measured area
    ratios R of (source, target) pairs, with a percentile bootstrap CI that resamples the pairs AND
    the seeds, so it counts both how few pairs there are and how noisy each R is.

    ``transfer_areas`` (pairs, seeds): each transferred seed's learning-curve area;
    ``scratch_areas`` (pairs, seeds): the areas of the pair's target trained from scratch;
    ``scores`` (pairs, seeds) per source seed's model, or (pairs, 1) for a predictor without a model.
    One seed resample per replicate serves every run: seed i of a cell starts from seed i of its
    source, so the seed index is the unit that ties runs together. R of a pair is the ratio of the
    resampled seed-mean areas, as ``area_ratio``. With ``versus`` (another predictor's scores), the
    result is the difference correlation(scores) - correlation(versus) on the same resamples: a
    paired comparison of two predictors.
    """
    _check_alpha(alpha, n_boot)
    t, s = np.asarray(transfer_areas, float), np.asarray(scratch_areas, float)
    predictors = [np.asarray(x, float) for x in ([scores] if versus is None else [scores, versus])]
    if t.ndim != 2 or t.shape != s.shape or any(x.ndim != 2 or len(x) != len(t) or x.shape[1] not in (1, t.shape[1])
                                                for x in predictors):
        raise ValueError(f"transfer_areas and scratch_areas must be (pairs, seeds) and scores (pairs, seeds or 1); "
                         f"got {t.shape}, {s.shape}, {', '.join(str(x.shape) for x in predictors)}")

    def corr(x, pairs, seeds, ratio):
        return statistic(x[pairs][:, seeds if x.shape[1] > 1 else [0]].mean(axis=1), ratio)

    def value(pairs, seeds):
        a_t, a_s = t[pairs][:, seeds].mean(axis=1), s[pairs][:, seeds].mean(axis=1)
        ratio = (a_t - a_s) / np.abs(a_s)
        values = [corr(x, pairs, seeds, ratio) for x in predictors]
        return values[0] if versus is None else values[0] - values[1]

    n_pairs, n_seeds = t.shape
    rng = np.random.default_rng(seed)
    stats = np.array([value(rng.integers(0, n_pairs, n_pairs), rng.integers(0, n_seeds, n_seeds))
                      for _ in range(int(n_boot))])
    low, high = np.nanquantile(stats, [alpha / 2, 1 - alpha / 2])  # NaN: a resample of one repeated pair
    return float(value(np.arange(n_pairs), np.arange(n_seeds))), float(low), float(high)


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
