"""Tests of jaxfer.stats: hand-computed and scipy values, and CIs that cover a known value on synthetic samples."""
import numpy as np
import pytest
import scipy.stats

from jaxfer.stats import (
    bootstrap_ci,
    iqm,
    kendall_tau,
    mean_band,
    probability_of_improvement,
    rank_correlation_ci,
    spearman,
    two_sample_ci,
)

# ------------------------------------------------------------------------------------------ bootstrap

def test_bootstrap_ci_contains_mean_and_is_seeded():
    x = np.random.default_rng(3).normal(1.0, 0.5, size=30)
    low, high = bootstrap_ci(x)
    assert low < x.mean() < high
    assert bootstrap_ci(x, seed=7) == bootstrap_ci(x, seed=7)
    low_m, high_m = bootstrap_ci(x, statistic=np.median, n_boot=500)
    assert low_m <= np.median(x) <= high_m
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)


def test_bootstrap_ci_of_the_mean_covers_the_true_mean():
    rng = np.random.default_rng(11)
    covered = sum(low <= 1.0 <= high for low, high in (bootstrap_ci(rng.normal(1.0, 2.0, size=200), seed=k)
                                                       for k in range(40)))
    assert covered >= 35  # nominal 95%: 38 of 40 expected


def test_bootstrap_ci_of_one_sample_is_its_value():
    assert bootstrap_ci([3.0]) == (3.0, 3.0)
    assert bootstrap_ci([3.0], statistic=np.median) == (3.0, 3.0)
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], alpha=1.5)


def test_two_sample_ci_resamples_an_arm_of_one_run_as_itself():
    rng = np.random.default_rng(12)
    x = rng.normal(1.0, 1.0, 30)
    low, high = two_sample_ci(x, [0.0], lambda a, b, axis: a.mean(axis) - b.mean(axis))
    assert (low, high) == pytest.approx(bootstrap_ci(x))  # the same resamples of x, minus a fixed 0
    assert two_sample_ci([2.0], [1.0], probability_of_improvement) == (1.0, 1.0)


# ------------------------------------------------------------- probability of improvement, seed-mean bands

def test_probability_of_improvement_hand_and_scipy():
    assert probability_of_improvement([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert probability_of_improvement([1.0, 2.0], [3.0, 4.0]) == 0.0
    # pairs: 2>1 yes, 2>3 no, 2=2 half; 5 beats all three -> (1 + 0 + 0.5 + 3) / 6
    assert probability_of_improvement([2.0, 5.0], [1.0, 3.0, 2.0]) == pytest.approx(4.5 / 6)
    rng = np.random.default_rng(0)
    x, y = rng.normal(0.3, 1, 7), rng.normal(0, 1, 5)
    u = scipy.stats.mannwhitneyu(x, y).statistic
    assert probability_of_improvement(x, y) == pytest.approx(u / (7 * 5))
    batched = probability_of_improvement(np.stack([x, x + 10]), np.stack([y, y]))  # vectorised rows
    assert batched == pytest.approx([u / 35, 1.0])


def test_two_sample_ci_of_the_probability_of_improvement():
    # the CI of P(X > Y) for clearly separated arms of many runs is narrow and near 1; for equal arms it holds 0.5
    rng = np.random.default_rng(2)
    low, high = two_sample_ci(rng.normal(3, 1, 40), rng.normal(0, 1, 40), probability_of_improvement)
    assert 0.9 < low <= high <= 1.0
    a = rng.normal(0, 1, 40)
    low, high = two_sample_ci(a, rng.permutation(a), probability_of_improvement)
    assert low < 0.5 < high


def test_mean_band_covers_the_mean_and_one_seed_has_none():
    rng = np.random.default_rng(3)
    values = rng.normal(0, 1, (20, 6)) + np.arange(6)
    mean, low, high = mean_band(values)
    np.testing.assert_allclose(mean, values.mean(0))
    assert np.all(low <= mean) and np.all(mean <= high)
    se = values.std(0, ddof=1) / np.sqrt(20)  # the percentile band is about +-1.96 standard errors
    np.testing.assert_allclose(high - low, 2 * 1.96 * se, rtol=0.3)
    mean, low, high = mean_band(values[:1])
    np.testing.assert_array_equal(low, mean) and np.testing.assert_array_equal(high, mean)


def test_mean_band_covers_the_true_mean():
    rng = np.random.default_rng(13)
    truth = np.linspace(0.0, 5.0, 40)
    _, low, high = mean_band(truth + rng.normal(0, 1, (30, 40)))
    assert ((low <= truth) & (truth <= high)).sum() >= 36  # nominal 95% of 40 epochs: 38


# --------------------------------------------------------------------------------------- iqm, ranks

def test_iqm_hand():
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert iqm([0, 1, 2, 3, 4, 5, 6, 1000]) == pytest.approx(3.5)  # outlier dropped
    assert iqm([0, 0, 0, 1, 2, 3, 10, 20, 30, 40]) == pytest.approx(6.0)  # n=10: drop 2 each end
    assert iqm([[1.0, 2.0], [3.0, 4.0]]) == pytest.approx(2.5)  # flattened
    assert iqm([5.0]) == pytest.approx(5.0)


def test_iqm_matches_scipy():
    rng = np.random.default_rng(6)
    for n in (1, 2, 3, 5, 7, 10, 11, 13, 100):
        x = rng.standard_cauchy(n)
        assert iqm(x) == pytest.approx(scipy.stats.trim_mean(x, 0.25, axis=None))


def test_rank_correlations_hand():
    x, y = [1, 2, 3, 4, 5], [5, 6, 7, 8, 7]
    # y ranks (average for the tie): 1, 2, 3.5, 5, 3.5 -> r = 8 / sqrt(10 * 9.5)
    assert spearman(x, y) == pytest.approx(8 / np.sqrt(95))
    # 8 concordant, 1 discordant, 1 pair tied in y: tau_b = 7 / sqrt(10 * 9)
    assert kendall_tau(x, y) == pytest.approx(7 / np.sqrt(90))
    assert spearman(x, x) == pytest.approx(1.0) and kendall_tau(x, x) == pytest.approx(1.0)
    assert spearman(x, x[::-1]) == pytest.approx(-1.0) and kendall_tau(x, x[::-1]) == pytest.approx(-1.0)
    # Monotone, not linear: still perfect.
    assert spearman([1, 2, 3, 4], [1, 10, 100, 1000]) == pytest.approx(1.0)
    # Ties in both: x ranks 1.5 1.5 3 4, y ranks 1 2.5 2.5 4; tau: C=4, D=0, 1 tie each -> 4/5;
    # spearman: centred ranks (-1,-1,.5,1.5) and (-1.5,0,0,1.5) -> 3.75 / 4.5.
    assert kendall_tau([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(4 / 5)
    assert spearman([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(3.75 / 4.5)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3])) and np.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])


def test_rank_correlations_match_scipy():
    rng = np.random.default_rng(8)
    for n in (3, 8, 25):
        x = rng.integers(0, 5, n).astype(float)  # many ties
        y = x + rng.integers(-2, 3, n)
        assert spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y)[0])
        assert kendall_tau(x, y) == pytest.approx(scipy.stats.kendalltau(x, y)[0])
        z = rng.normal(size=n)
        assert spearman(z, y) == pytest.approx(scipy.stats.spearmanr(z, y)[0])
        assert kendall_tau(z, y) == pytest.approx(scipy.stats.kendalltau(z, y)[0])


# ----------------------------------------------------------- rank correlation CI over pairs and seeds

def _synthetic(n_pairs, rho, rng, n_seeds=5, seed_noise=0.0):
    """Scores x and transfer areas whose seed-mean R has rank correlation with x near the truth."""
    xy = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n_pairs)
    transfer = 10 + xy[:, 1:2] + seed_noise * rng.normal(size=(n_pairs, n_seeds))
    return xy[:, :1], transfer, np.full((n_pairs, n_seeds), 10.0)


def test_rank_correlation_ci_covers_the_truth_and_narrows_with_more_pairs():
    rho = 0.6
    truth = 6 / np.pi * np.arcsin(rho / 2)  # Spearman's rho of a bivariate normal
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(30):
        point, low, high = rank_correlation_ci(*_synthetic(60, rho, rng), n_boot=400, seed=1)
        assert low <= point <= high
        covered += low <= truth <= high
    assert covered >= 25  # nominal 95%: 28.5 of 30 expected
    widths = [np.subtract(*rank_correlation_ci(*_synthetic(n, rho, rng), n_boot=400)[:0:-1])
              for n in (20, 80, 320)]
    assert widths[0] > widths[1] > widths[2] > 0


def test_rank_correlation_ci_counts_seed_noise():
    rng = np.random.default_rng(0)
    x, transfer, scratch = _synthetic(40, 0.6, rng, seed_noise=0.0)
    quiet = rank_correlation_ci(x, transfer, scratch, n_boot=400)
    noisy = rank_correlation_ci(x, transfer + 3.0 * rng.normal(size=transfer.shape), scratch, n_boot=400)
    assert noisy[2] - noisy[1] > quiet[2] - quiet[1]


def test_rank_correlation_ci_point_is_the_correlation_with_the_seed_mean_area_ratio():
    rng = np.random.default_rng(0)
    scores = rng.random((12, 5))
    transfer, scratch = 5 + rng.random((12, 5)), 5 + rng.random((12, 5))
    point, _, _ = rank_correlation_ci(scores, transfer, scratch, statistic=kendall_tau, n_boot=50)
    ratios = (transfer.mean(axis=1) - scratch.mean(axis=1)) / scratch.mean(axis=1)
    assert point == pytest.approx(kendall_tau(scores.mean(axis=1), ratios))
    with pytest.raises(ValueError, match="scores"):
        rank_correlation_ci(scores[:, :3], transfer, scratch)


def test_paired_difference_ci_separates_a_good_predictor_from_noise_and_is_zero_against_itself():
    rng = np.random.default_rng(0)
    x, transfer, scratch = _synthetic(60, 0.8, rng, seed_noise=0.2)
    noise = rng.normal(size=x.shape)
    point, low, high = rank_correlation_ci(x, transfer, scratch, n_boot=400, versus=noise)
    assert low > 0 and low <= point <= high
    assert rank_correlation_ci(x, transfer, scratch, n_boot=100, versus=x) == (0.0, 0.0, 0.0)


def test_rank_correlation_ci_of_one_seed_resamples_the_pairs():
    rng = np.random.default_rng(14)
    x, transfer, scratch = _synthetic(40, 0.6, rng, n_seeds=1)
    point, low, high = rank_correlation_ci(x, transfer, scratch, n_boot=400)
    assert point == pytest.approx(spearman(x, transfer))
    assert low < point < high
