"""Statistics of a handful of runs: percentile bootstrap CIs, the interquartile mean, the probability of
improvement, rank correlations and their CIs, seed-mean bands, Holm's correction of several p-values.

Numpy and scipy only, no JAX and no other jaxfer module: these run after training on a few logged numbers,
on any machine. Every bootstrap is ``scipy.stats.bootstrap``'s percentile interval (no normality assumption,
which a few seeds cannot support) with a generator seeded by the caller, so that a report is reproducible.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import scipy.stats

__all__ = ["bootstrap_ci", "two_sample_ci", "iqm", "probability_of_improvement", "mean_band", "spearman",
           "kendall_tau", "rank_correlation_ci", "holm"]


def _percentile_ci(samples, statistic: Callable, n_boot: int, alpha: float, seed: int, axis: int = -1,
                   drop_nan: bool = False):
    """(low, high) of ``statistic(*samples, axis=)``, each sample resampled on its own along ``axis``.

    A sample of one observation has a single resample, itself, which scipy refuses: it is held fixed, and
    where every sample is, low = high = the statistic. ``drop_nan``: the interval of the resamples on which
    the statistic is defined (scipy's would be NaN).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    samples = [np.asarray(x) for x in samples]
    fixed = [x.shape[axis] < 2 for x in samples]
    if all(fixed):
        value = statistic(*samples, axis=axis)
        return value, value
    held = [np.moveaxis(x, axis, -1)[..., None, :] for x in samples]  # broadcasts with scipy's (..., resamples, n)

    def resampled(*moving, axis):
        moving = iter(moving)
        return statistic(*(h if f else next(moving) for h, f in zip(held, fixed)), axis=axis)

    with warnings.catch_warnings():
        if drop_nan:
            warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
        result = scipy.stats.bootstrap([x for x, f in zip(samples, fixed) if not f], resampled, axis=axis,
                                       vectorized=True, n_resamples=int(n_boot), confidence_level=1 - alpha,
                                       method="percentile", rng=np.random.default_rng(seed))
    if drop_nan:
        return tuple(np.nanquantile(result.bootstrap_distribution, [alpha / 2, 1 - alpha / 2], axis=-1))
    return result.confidence_interval.low, result.confidence_interval.high


def bootstrap_ci(samples, statistic: Callable = np.mean, n_boot: int = 2000, alpha: float = 0.05,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) CI of ``statistic(x, axis=)`` (np.mean, np.median, ...) over the 1-D
    ``samples``. One sample gives low = high = its statistic."""
    x = np.asarray(samples, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"bootstrap_ci needs a 1-D array of at least one sample, got shape {x.shape}")
    low, high = _percentile_ci((x,), statistic, n_boot, alpha, seed, axis=0)
    return float(low), float(high)


def two_sample_ci(x, y, statistic: Callable, n_boot: int = 2000, alpha: float = 0.05,
                  seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) CI of ``statistic(x, y, axis=)`` for two independent sets of runs:
    each set's runs resampled on their own (rliable's stratified bootstrap, one stratum per arm)."""
    low, high = _percentile_ci((np.asarray(x, float), np.asarray(y, float)), statistic, n_boot, alpha, seed)
    return float(low), float(high)


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


def mean_band(values, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0):
    """(mean, low, high) per epoch of (seeds, epochs) values: the seed mean and its percentile bootstrap
    (1 - alpha) CI over seeds. One seed has no band (low = high = mean)."""
    a = np.asarray(values, dtype=float)
    if a.ndim not in (1, 2):
        raise ValueError(f"values must be 1-D (epochs,) or 2-D (seeds, epochs), got shape {a.shape}")
    a = a[None] if a.ndim == 1 else a
    low, high = _percentile_ci((a,), np.mean, n_boot, alpha, seed, axis=0)
    return a.mean(axis=0), low, high


def _rank_statistic(x, y, fn) -> float:
    a, b = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if a.size != b.size:
        raise ValueError(f"x and y differ in length: {a.size} vs {b.size}")
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
    source, so the seed index is the unit that ties runs together. The bootstrap resamples two samples,
    the pair indices and the seed indices, each on its own. R of a pair is the ratio of the resampled
    seed-mean areas (as ``jaxfer.transfer.area_ratio.area_ratio``). With ``versus`` (another predictor's
    scores), the result is the difference correlation(scores) - correlation(versus) on the same
    resamples: a paired comparison of two predictors. A resample on which the correlation is undefined
    (one pair drawn every time) is left out of the interval.
    """
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

    def values(pairs, seeds, axis):
        """One value per resample of scipy's batch of index resamples (..., resamples, n)."""
        lead = np.broadcast_shapes(pairs.shape[:-1], seeds.shape[:-1])
        pairs, seeds = (np.broadcast_to(i, lead + i.shape[-1:]) for i in (pairs, seeds))
        return np.array([value(pairs[k], seeds[k]) for k in np.ndindex(lead)]).reshape(lead)

    pairs, seeds = np.arange(t.shape[0]), np.arange(t.shape[1])
    low, high = _percentile_ci((pairs, seeds), values, n_boot, alpha, seed, drop_nan=True)
    return float(value(pairs, seeds)), float(low), float(high)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input's order: the family-wise error rate of several
    predictors tested on the same data, with no assumption on how the tests depend on each other (scipy's
    ``false_discovery_control`` is Benjamini-Hochberg: the false discovery rate only). Reject where <= alpha."""
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.isnan(p).any() or ((p < 0) | (p > 1)).any():
        raise ValueError(f"holm needs a 1-D array of p-values in [0, 1], got {p}")
    order = np.argsort(p)
    stepped = np.minimum(1.0, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    adjusted = np.empty_like(p)
    adjusted[order] = stepped
    return adjusted
