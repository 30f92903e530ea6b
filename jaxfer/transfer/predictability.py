"""Can a predictor tell, before training, which transfers pay? The statistics of a (sources, targets) matrix of
area ratios R: how much of R is the source, the target and the pair (and how much of the pair-specific part is
seed noise), and a validation of a predictor's scores that counts games, not pairs.

A pooled correlation over all pairs mixes how easy each target is to improve, how good each source is and the
pair-specific part a pair predictor must find; pairs that share a game are not independent. So the primary
statistic here ranks sources within each target (Kendall's tau, averaged over targets) and is tested by
permuting sources within each target; the pooled Spearman's CI resamples games.

Numpy and scipy only. A matrix is (sources, targets), most often over the same games in the same order on both
axes (a held-out block: its target games are some of the sources); NaN marks a cell without a value (a game is
not transferred to itself). Per-seed areas: transfer
(sources, targets, seeds), scratch (targets, seeds); seed i of every cell is one block (seed i of a transfer
starts from seed i of its source).
"""
from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import scipy.stats

from jaxfer import stats

__all__ = ["ratio_matrix", "seed_ratios", "AdditiveFit", "additive_fit", "decompose", "interaction_noise",
           "split_half_reliability", "group_taus", "within_tau", "within_tau_test", "within_tau_game_test",
           "within_tau_source_test", "pooled_spearman_ci",
           "top1_regret", "auroc_transfer_helps", "target_ease", "source_quality", "simulate_power",
           "kendall_power_normal"]


def _areas(transfer_areas, scratch_areas) -> tuple[np.ndarray, np.ndarray]:
    t, s = np.asarray(transfer_areas, float), np.asarray(scratch_areas, float)
    if t.ndim != 3 or s.ndim != 2 or t.shape[1:] != s.shape:
        raise ValueError(f"transfer areas must be (sources, targets, seeds) and scratch (targets, seeds); "
                         f"got {t.shape} and {s.shape}")
    return t, s


def ratio_matrix(transfer_areas, scratch_areas, seeds=None) -> np.ndarray:
    """R = (mean A_transfer - mean A_scratch) / |mean A_scratch| over ``seeds`` (all if None): the area ratio of
    the seed-mean curves (``jaxfer.transfer.area_ratio``; the trapezoid rule is linear)."""
    t, s = _areas(transfer_areas, scratch_areas)
    if seeds is not None:
        t, s = t[..., seeds], s[..., seeds]
    scratch_mean = s.mean(axis=-1)
    return (t.mean(axis=-1) - scratch_mean) / np.abs(scratch_mean)


def seed_ratios(transfer_areas, scratch_areas) -> np.ndarray:
    """(sources, targets, seeds): seed i's (A_transfer_i - A_scratch_i) / |mean A_scratch|. With the denominator
    held at the all-seed mean, their seed mean is R exactly, so R splits into seed blocks without approximation."""
    t, s = _areas(transfer_areas, scratch_areas)
    return (t - s[None]) / np.abs(s.mean(axis=-1))[None, :, None]


@dataclasses.dataclass(frozen=True)
class AdditiveFit:
    """R = mean + source + target + interaction, least squares over the observed cells. The effects are centred
    over the cells (their sum over observed cells is 0), so each share of the sum of squares is well defined."""
    mean: float
    source: np.ndarray  # (sources,)
    target: np.ndarray  # (targets,)
    interaction: np.ndarray  # (sources, targets): the residual, NaN where R is
    df: int  # the interaction's degrees of freedom: cells - (sources + targets - 1)


def additive_fit(matrix) -> AdditiveFit:
    """Two-way additive fit of a matrix with missing cells (NaN; a missing diagonal makes rows and columns
    non-orthogonal, so row and column means would not do)."""
    r = np.asarray(matrix, float)
    rows, cols = np.nonzero(~np.isnan(r))
    n_sources, n_targets = r.shape
    design = np.zeros((len(rows), n_sources + n_targets))
    design[np.arange(len(rows)), rows] = 1.0
    design[np.arange(len(rows)), n_sources + cols] = 1.0
    coef, _, rank, _ = np.linalg.lstsq(design, r[rows, cols], rcond=None)
    source, target = coef[:n_sources], coef[n_sources:]
    source_centre, target_centre = source[rows].mean(), target[cols].mean()
    interaction = np.full_like(r, np.nan)
    interaction[rows, cols] = r[rows, cols] - design @ coef
    return AdditiveFit(float(source_centre + target_centre), source - source_centre, target - target_centre,
                       interaction, int(len(rows) - rank))


def decompose(matrix) -> dict:
    """Shares of R's sum of squares (around its mean, over the observed cells): source, target, interaction, and
    twice the source-target covariance that a missing diagonal leaves (the four sum to 1)."""
    r = np.asarray(matrix, float)
    rows, cols = np.nonzero(~np.isnan(r))
    fit = additive_fit(r)
    values = r[rows, cols]
    total = float(((values - values.mean()) ** 2).sum())
    source, target = fit.source[rows], fit.target[cols]
    return {"ss_total": total, "source": float((source ** 2).sum() / total),
            "target": float((target ** 2).sum() / total),
            "source_target_covariance": float(2 * (source * target).sum() / total),
            "interaction": float(np.nansum(fit.interaction ** 2) / total), "interaction_df": fit.df,
            "cells": len(values)}


def interaction_noise(transfer_areas, scratch_areas) -> dict:
    """Is R's pair-specific part more than seed noise? Seeds are blocks: the interaction of each seed's matrix
    (``seed_ratios``) scatters around the interaction of R, and that seed x source x target scatter is the noise
    (a seed's source model and its scratch run shift whole rows and columns, which the additive fit removes).

    Returns the interaction's sum of squares, what noise alone would give it (its degrees of freedom times the
    noise variance of a cell of R), their ratio, the F test of interaction against noise (p) and the variance of
    the interaction beyond noise per cell (negative where the interaction is all noise)."""
    per_seed = seed_ratios(transfer_areas, scratch_areas)
    seeds = per_seed.shape[-1]
    if seeds < 2:
        raise ValueError("the seed noise needs at least 2 seeds")
    fit = additive_fit(per_seed.mean(axis=-1))
    residuals = np.stack([additive_fit(per_seed[..., i]).interaction for i in range(seeds)], axis=-1)
    ss_interaction = float(np.nansum(fit.interaction ** 2))
    df_noise = (seeds - 1) * fit.df
    noise_variance = float(np.nansum((residuals - fit.interaction[..., None]) ** 2)) / df_noise / seeds
    f = ss_interaction / fit.df / noise_variance
    return {"ss_interaction": ss_interaction, "ss_expected_from_noise": fit.df * noise_variance,
            "noise_fraction": fit.df * noise_variance / ss_interaction, "noise_variance": noise_variance,
            "interaction_variance_beyond_noise": ss_interaction / fit.df - noise_variance,
            "f": f, "df": [fit.df, df_noise], "p": float(scipy.stats.f.sf(f, fit.df, df_noise))}


def _centre(matrix, axis: int) -> np.ndarray:
    return matrix - np.nanmean(matrix, axis=axis, keepdims=True)


PARTS = {"ratio": lambda m: m, "within_target": lambda m: _centre(m, 0), "within_source": lambda m: _centre(m, 1),
         "interaction": lambda m: additive_fit(m).interaction}


def _halves(seeds: int):
    """Every split of the seeds into two disjoint halves of seeds // 2 (an odd seed out), each split once."""
    half = seeds // 2
    for first in itertools.combinations(range(seeds), half):
        rest = [i for i in range(seeds) if i not in first]
        for second in itertools.combinations(rest, half):
            if first < second:
                yield list(first), list(second)


def split_half_reliability(transfer_areas, scratch_areas) -> dict:
    """How reproducible R is over seeds: for every split of the seeds into two halves, R of each half (its own
    scratch means too), the Pearson correlation of the halves over the cells, averaged over the splits, and
    Spearman-Brown corrected to all seeds. Per part of R: all of it, within target (columns centred: what ranks
    sources for a target), within source, and the interaction. A mean half correlation <= 0 means nothing of
    that part reproduces: its reliability is 0. sqrt(reliability) bounds any predictor's correlation with R."""
    t, s = _areas(transfer_areas, scratch_areas)
    seeds = t.shape[-1]
    if seeds < 2:
        raise ValueError("a split-half reliability needs at least 2 seeds")
    correlations = {name: [] for name in PARTS}
    for first, second in _halves(seeds):
        a, b = ratio_matrix(t, s, first), ratio_matrix(t, s, second)
        for name, part in PARTS.items():
            x, y = part(a), part(b)
            cells = ~np.isnan(x) & ~np.isnan(y)
            correlations[name].append(np.corrcoef(x[cells], y[cells])[0, 1])
    k = seeds / (seeds // 2)
    out = {}
    for name, values in correlations.items():
        r = float(np.mean(values))
        out[name] = {"half_correlation": r, "reliability": k * max(r, 0.0) / (1 + (k - 1) * max(r, 0.0)),
                     "splits": len(values)}
    return out


def _tau_b(x, y) -> np.ndarray:
    """Kendall's tau-b along the last axis, broadcasting (many permutations of x against one y). 0 where x or y
    is constant: a predictor that orders no pair gets none right or wrong. A NaN leaves out the pairs it is in
    (pairwise-complete: a relabelled score may land on a cell it has no value for)."""
    i, j = np.triu_indices(np.shape(x)[-1], 1)
    sx, sy = (np.nan_to_num(np.sign(v[..., i] - v[..., j])) for v in (np.asarray(x), np.asarray(y)))
    concordance = (sx * sy).sum(axis=-1)
    scale = np.sqrt(np.abs(sx).sum(axis=-1) * np.abs(sy).sum(axis=-1))
    return np.where(scale > 0, concordance / np.where(scale > 0, scale, 1.0), 0.0)


def _groups(scores, ratios, within: str):
    """Per target (``within="target"``: its column) or per source (its row), the observed cells' scores and R
    along the last axis; leading axes batch matrices."""
    s, r = np.asarray(scores, float), np.asarray(ratios, float)
    if within not in ("target", "source"):
        raise ValueError(f"within must be 'target' or 'source', got {within!r}")
    if s.shape[-2:] != r.shape[-2:]:
        raise ValueError(f"scores {s.shape} and ratios {r.shape} differ in shape")
    if within == "source":
        s, r = np.swapaxes(s, -1, -2), np.swapaxes(r, -1, -2)
    observed = ~np.isnan(r.reshape(-1, *r.shape[-2:])).any(axis=0) & ~np.isnan(s.reshape(-1, *s.shape[-2:])).any(
        axis=0)
    groups = [(s[..., observed[:, g], g], r[..., observed[:, g], g]) for g in range(r.shape[-1])]
    return [(x, y) for x, y in groups if x.shape[-1] >= 2]


def group_taus(scores, ratios, within: str = "target") -> np.ndarray:
    """(targets,) Kendall's tau-b between the scores and R of each target's cells (``within="source"``: each
    source's), NaN where a target has fewer than 2 cells with both: where a predictor works and where not."""
    s, r = np.asarray(scores, float), np.asarray(ratios, float)
    if s.ndim != 2 or s.shape != r.shape:
        raise ValueError(f"scores and ratios must be one (sources, targets) shape, got {s.shape} and {r.shape}")
    if within not in ("target", "source"):
        raise ValueError(f"within must be 'target' or 'source', got {within!r}")
    if within == "source":
        s, r = s.T, r.T
    cells = [~np.isnan(s[:, g]) & ~np.isnan(r[:, g]) for g in range(r.shape[1])]
    return np.array([float(_tau_b(s[c, g], r[c, g])) if c.sum() >= 2 else np.nan for g, c in enumerate(cells)])


def within_tau(scores, ratios, within: str = "target") -> float:
    """Mean over targets (or sources) of Kendall's tau-b between the scores and R of the cells in it: how well
    the predictor ranks the sources for a target, with target ease (constant within a target) taken out."""
    return float(np.nanmean(group_taus(scores, ratios, within)))


def _permutation_p(groups, n_perm: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(mean tau, one-sided p) of batched groups: the scores permuted within each group, independently."""
    observed, null = 0.0, 0.0
    for x, y in groups:
        observed = observed + _tau_b(x, y)
        repeated = np.repeat(x[..., None, :], n_perm, axis=-2)
        null = null + _tau_b(rng.permuted(repeated, axis=-1), y[..., None, :])
    observed, null = observed / len(groups), null / len(groups)
    exceed = (null >= np.asarray(observed)[..., None] - 1e-12).sum(axis=-1)
    return observed, (1 + exceed) / (1 + n_perm)


def within_tau_test(scores, ratios, within: str = "target", n_perm: int = 10000, seed: int = 0) -> tuple[float, float]:
    """(mean within-target tau, p): a permutation test that shuffles the scores among the sources of each target
    (or the targets of each source), so target ease and the games' shared structure stay as they are.
    One-sided (a predictor claims that a higher score means more transfer): p = (1 + #null >= tau) / (1 + n_perm).
    """
    tau, p = _permutation_p(_groups(scores, ratios, within), n_perm, np.random.default_rng(seed))
    return float(tau), float(p)


def _relabelled_p(relabelled, ratios, within: str) -> tuple[float, float]:
    """(statistic at the identity, p) of relabelled score matrices (orderings first, the identity at 0): the mean
    over R's targets (sources) of the pairwise-complete tau, so the groups are R's alone and a relabelled score
    without a value on a cell (a game's pair with itself, a target a probe could not score) leaves that cell out
    instead of changing the groups."""
    r = np.asarray(ratios, float)
    if within == "source":
        relabelled, r = np.swapaxes(relabelled, -1, -2), r.T
    elif within != "target":
        raise ValueError(f"within must be 'target' or 'source', got {within!r}")
    cells = [~np.isnan(r[:, g]) for g in range(r.shape[1])]
    taus = np.mean([_tau_b(relabelled[:, c, g], r[c, g]) for g, c in enumerate(cells) if c.sum() >= 2], axis=0)
    return float(taus[0]), float((taus >= taus[0] - 1e-12).mean())


def within_tau_game_test(scores, ratios, within: str = "target") -> tuple[float, float]:
    """(mean within-target tau, exact p) over every relabelling of the games: the scores' rows and columns
    permuted together. ``within_tau_test`` treats targets as independent, which they are not where R has a
    source effect (every column ranks the same good sources): a score that only knows its source (or anything
    shared across a source's targets) then passes it too often. Relabelling the games keeps that structure, at
    the price of n! orderings (24 for 4 games: p >= 1/24). The tau is ``_relabelled_p``'s: a score missing on a
    cell R has counts as no pair there."""
    s, r = np.asarray(scores, float), np.asarray(ratios, float)
    if s.shape != r.shape or s.shape[0] != s.shape[1]:
        raise ValueError(f"scores and ratios must be one square (games, games) shape, got {s.shape} and {r.shape}")
    orders = np.array(list(itertools.permutations(range(len(s)))))  # the identity first
    return _relabelled_p(s[orders[:, :, None], orders[:, None, :]], r, within)


def within_tau_source_test(scores, ratios, within: str = "target", n_perm: int = 40320,
                           seed: int = 0) -> tuple[float, float]:
    """(mean within-target tau, p) over relabellings of the sources: the scores' rows permuted together, the
    columns kept. The game test's protection for designs whose sources and targets are not one game list (a
    held-out block: every game a source, some games targets): a score shared across a source's targets keeps
    that structure under the null. Exact (every ordering, the identity included) where the sources allow at most
    ``n_perm`` orderings, else ``n_perm`` random ones and p = (1 + #null >= tau) / (1 + n_perm)."""
    s, r = np.asarray(scores, float), np.asarray(ratios, float)
    if s.shape != r.shape:
        raise ValueError(f"scores {s.shape} and ratios {r.shape} differ in shape")
    n = len(s)
    exact = math.factorial(n) <= n_perm
    rng = np.random.default_rng(seed)
    orders = (np.array(list(itertools.permutations(range(n)))) if exact
              else np.concatenate([np.arange(n)[None], np.argsort(rng.random((n_perm, n)), axis=1)]))
    return _relabelled_p(s[orders], r, within)


def pooled_spearman_ci(scores, ratios, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0,
                       games: tuple[list, list] | None = None) -> tuple[float, float, float]:
    """(Spearman over all pairs, low, high): the percentile CI resamples GAMES, since pairs that share a game are
    not independent. A game drawn twice brings its pairs twice; pairs of a game with itself do not exist.
    ``games``: the (sources, targets) labels where the axes are not one game list (a held-out block); a drawn
    game brings its row if it is a source and its column if it is a target.
    Resamples that leave fewer than 2 pairs (or a constant) are left out."""
    s, r = np.asarray(scores, float), np.asarray(ratios, float)
    if games is None:
        if s.shape != r.shape or s.shape[0] != s.shape[1]:
            raise ValueError(f"scores and ratios must be one square (games, games) shape, got {s.shape} and {r.shape}")
        games = (list(range(len(s))), list(range(len(s))))
    sources, targets = games
    if s.shape != r.shape or s.shape != (len(sources), len(targets)):
        raise ValueError(f"scores {s.shape} and ratios {r.shape} must be (sources, targets) = "
                         f"({len(sources)}, {len(targets)})")
    labels = list(dict.fromkeys([*sources, *targets]))
    rng = np.random.default_rng(seed)

    def correlation(drawn):
        rows = [i for g in drawn for i, source in enumerate(sources) if source == labels[g]]
        cols = [j for g in drawn for j, target in enumerate(targets) if target == labels[g]]
        x, y = s[np.ix_(rows, cols)], r[np.ix_(rows, cols)]
        cells = ~np.isnan(x) & ~np.isnan(y)
        return stats.spearman(x[cells], y[cells])

    draws = [correlation(rng.integers(len(labels), size=len(labels))) for _ in range(n_boot)]
    low, high = np.nanquantile(draws, [alpha / 2, 1 - alpha / 2])
    return correlation(np.arange(len(labels))), float(low), float(high)


def top1_regret(scores, ratios) -> float:
    """Mean over targets of (best R into the target) - (R of the source the predictor ranks first; the mean R of
    tied first choices): what choosing the source by the predictor costs. A constant predictor gives the
    expected regret of a random choice."""
    regrets = []
    for x, y in _groups(scores, ratios, "target"):
        regrets.append(y.max() - y[x == x.max()].mean())
    return float(np.mean(regrets))


def auroc_transfer_helps(scores, ratios) -> float:
    """AUROC of the scores for "transfer helps" (R > 0): P(score of a helping pair > score of a hurting one),
    ties counted half. NaN where every pair helps or none does."""
    s, r = np.asarray(scores, float), np.asarray(ratios, float)
    cells = ~np.isnan(s) & ~np.isnan(r)
    helps = r[cells] > 0
    if helps.all() or not helps.any():
        return float("nan")
    return float(stats.probability_of_improvement(s[cells][helps], s[cells][~helps]))


def target_ease(ratios) -> np.ndarray:
    """Reference predictor: for pair (s, t), the mean R into t from the other sources (leave s out). Within a
    target it falls as R rises (the cell itself is left out), so its within-target tau is -1 by construction:
    it is a reference for the pooled and within-source statistics."""
    r = np.asarray(ratios, float)
    return (np.nansum(r, axis=0, keepdims=True) - r) / ((~np.isnan(r)).sum(axis=0, keepdims=True) - 1)


def source_quality(ratios) -> np.ndarray:
    """Reference predictor: for pair (s, t), the mean R out of s into the other targets (leave t out): what a
    pair predictor must beat within a target (its within-source tau is -1 by construction)."""
    return target_ease(np.asarray(ratios, float).T).T


def simulate_power(observed, rho: float, source_variance: float = 0.0, target_variance: float = 0.0,
                   noise_variance: float = 0.0, within: str = "target", alpha: float = 0.05, n_sim: int = 1000,
                   n_perm: int = 500, seed: int = 0, chunk: int = 50,
                   relabel_sources: bool = False) -> tuple[float, float]:
    """(power, its Monte-Carlo standard error) of ``within_tau_test`` (``relabel_sources``:
    ``within_tau_source_test`` with ``n_perm`` random relabellings) at level ``alpha`` on a design of
    ``observed`` cells (a boolean (sources, targets) mask), for a predictor whose latent Pearson correlation with
    R's pair-specific part is ``rho``. The latent Gaussian model, per cell: R = source + target + interaction +
    noise, the interaction of variance 1 (the other variances are in its units), the predictor
    rho * interaction + sqrt(1 - rho^2) * independent noise."""
    mask = np.asarray(observed, bool)
    rng = np.random.default_rng(seed)
    rejected = 0
    for start in range(0, n_sim, chunk):
        batch = min(chunk, n_sim - start)
        interaction = rng.standard_normal((batch, *mask.shape))
        ratios = (np.sqrt(source_variance) * rng.standard_normal((batch, mask.shape[0], 1))
                  + np.sqrt(target_variance) * rng.standard_normal((batch, 1, mask.shape[1]))
                  + interaction + np.sqrt(noise_variance) * rng.standard_normal((batch, *mask.shape)))
        scores = rho * interaction + np.sqrt(1 - rho ** 2) * rng.standard_normal((batch, *mask.shape))
        ratios[:, ~mask] = np.nan
        if relabel_sources:
            p = np.array([within_tau_source_test(x, y, within, n_perm, seed=int(rng.integers(2 ** 31)))[1]
                          for x, y in zip(scores, ratios)])
        else:
            _, p = _permutation_p(_groups(scores, ratios, within), n_perm, rng)
        rejected += int((p <= alpha).sum())
    power = rejected / n_sim
    return power, float(np.sqrt(power * (1 - power) / n_sim))


def kendall_power_normal(n: int, rho: float, alpha: float = 0.05) -> float:
    """Closed-form power of the one-sided test of Kendall's tau > 0 on n bivariate-normal pairs of correlation
    rho, in the normal approximation: the null variance 2(2n+5) / (9n(n-1)), and under rho the U-statistic's
    variance (4(n-2) zeta1 + 2(1 - tau^2)) / (n(n-1)), tau = 2 asin(rho) / pi and
    zeta1 = 1/9 - 4 asin(rho/2)^2 / pi^2 (the same formula gives the null variance at rho = 0). What
    ``simulate_power`` must reproduce on one target of n sources, without source effects or noise."""
    tau = 2 * np.arcsin(rho) / np.pi
    zeta1 = 1 / 9 - 4 * np.arcsin(rho / 2) ** 2 / np.pi ** 2
    null_sd = np.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1)))
    sd = np.sqrt((4 * (n - 2) * zeta1 + 2 * (1 - tau ** 2)) / (n * (n - 1)))
    return float(scipy.stats.norm.sf((scipy.stats.norm.isf(alpha) * null_sd - tau) / sd))
