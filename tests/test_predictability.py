"""Tests of jaxfer.transfer.predictability on synthetic matrices with planted structure, and of stats.holm."""
import numpy as np
import pytest
import scipy.stats

from jaxfer.stats import holm
from jaxfer.transfer import predictability as pred


def off_diagonal(n: int) -> np.ndarray:
    return ~np.eye(n, dtype=bool)


def planted(n: int, source_sd: float, target_sd: float, interaction_sd: float, seed: int):
    """(R, source effect, target effect, interaction) of n games, NaN on the diagonal."""
    rng = np.random.default_rng(seed)
    source, target = source_sd * rng.standard_normal(n), target_sd * rng.standard_normal(n)
    interaction = interaction_sd * rng.standard_normal((n, n))
    ratios = source[:, None] + target[None, :] + interaction
    ratios[~off_diagonal(n)] = np.nan
    return ratios, source, target, interaction


def seed_areas(ratios: np.ndarray, noise_sd: float, seeds: int, seed: int):
    """Per-seed areas whose seed-mean R is ``ratios`` plus seed noise of ``noise_sd`` per seed (scratch area 1 with
    a little noise of its own, shared by every source into the target)."""
    rng = np.random.default_rng(seed)
    scratch = 1.0 + 0.01 * rng.standard_normal((len(ratios), seeds))
    transfer = scratch.mean(axis=1)[None, :, None] * (1 + ratios[..., None]) + noise_sd * rng.standard_normal(
        (*ratios.shape, seeds))
    return transfer, scratch


# ------------------------------------------------------------------------------------------ how much to predict

def test_ratio_matrix_is_the_area_ratio_of_the_seed_means_and_seed_ratios_average_to_it():
    rng = np.random.default_rng(0)
    transfer, scratch = rng.uniform(1, 2, (3, 3, 4)), rng.uniform(1, 2, (3, 4))
    ratios = pred.ratio_matrix(transfer, scratch)
    assert ratios[0, 1] == pytest.approx((transfer[0, 1].mean() - scratch[1].mean()) / scratch[1].mean())
    assert np.allclose(pred.seed_ratios(transfer, scratch).mean(axis=-1), ratios)
    assert pred.ratio_matrix(transfer, scratch, [2])[0, 1] == pytest.approx(transfer[0, 1, 2] / scratch[1, 2] - 1)


def test_the_additive_fit_recovers_planted_source_target_and_interaction_variances():
    n = 30
    ratios, source, target, _ = planted(n, 1.0, 2.0, 0.5, seed=1)
    fit = pred.additive_fit(ratios)
    assert np.corrcoef(fit.source, source)[0, 1] > 0.98 and np.corrcoef(fit.target, target)[0, 1] > 0.99
    assert fit.df == n * (n - 1) - (2 * n - 1)
    assert np.nansum(fit.interaction ** 2) / fit.df == pytest.approx(0.25, rel=0.1)
    shares = pred.decompose(ratios)
    parts = ("source", "target", "source_target_covariance", "interaction")
    assert sum(shares[k] for k in parts) == pytest.approx(1.0)
    total = shares["ss_total"] / shares["cells"]
    assert shares["source"] * total == pytest.approx(np.var(source), rel=0.1)
    assert shares["target"] * total == pytest.approx(np.var(target), rel=0.1)


def test_an_exactly_additive_matrix_has_no_interaction():
    ratios, *_ = planted(5, 1.0, 1.0, 0.0, seed=2)
    shares = pred.decompose(ratios)
    assert shares["interaction"] == pytest.approx(0.0, abs=1e-12)
    assert shares["interaction_df"] == 11


def test_seed_noise_is_measured_and_told_apart_from_a_planted_interaction():
    ratios, _, _, interaction = planted(12, 0.3, 0.3, 0.2, seed=3)
    transfer, scratch = seed_areas(ratios, noise_sd=0.3, seeds=6, seed=4)
    noise = pred.interaction_noise(transfer, scratch)
    assert noise["noise_variance"] == pytest.approx(0.3 ** 2 / 6, rel=0.15)
    fit = pred.additive_fit(np.where(off_diagonal(12), interaction, np.nan))
    assert noise["interaction_variance_beyond_noise"] == pytest.approx(np.nansum(fit.interaction ** 2) / fit.df,
                                                                       rel=0.2)  # the planted one, as realised
    assert noise["p"] < 1e-6
    no_interaction, *_ = planted(12, 0.3, 0.3, 0.0, seed=3)
    p_values = [pred.interaction_noise(*seed_areas(no_interaction, 0.3, 6, seed=k))["p"] for k in range(40)]
    assert 0 < np.mean(np.array(p_values) < 0.05) <= 0.15  # nominal 5%
    assert np.mean(p_values) == pytest.approx(0.5, abs=0.12)


def test_split_half_reliability_is_high_without_noise_and_zero_for_pure_noise():
    ratios, *_ = planted(6, 1.0, 1.0, 0.5, seed=5)
    quiet = pred.split_half_reliability(*seed_areas(ratios, 1e-4, seeds=4, seed=6))
    assert all(part["reliability"] > 0.99 for part in quiet.values())
    assert quiet["ratio"]["splits"] == 3  # {01|23, 02|13, 03|12}
    flat = np.where(off_diagonal(6), 0.0, np.nan)
    noisy = pred.split_half_reliability(*seed_areas(flat, 0.3, seeds=5, seed=7))
    assert noisy["interaction"]["reliability"] < 0.5
    assert noisy["interaction"]["splits"] == 15


# ------------------------------------------------------------------------------------------ the validation

def test_tau_b_broadcasts_and_equals_scipy_with_ties():
    rng = np.random.default_rng(8)
    y = rng.standard_normal(6)
    x = rng.integers(0, 3, (4, 6)).astype(float)
    expected = [scipy.stats.kendalltau(row, y).statistic for row in x]
    assert np.allclose(pred._tau_b(x, y), expected)
    assert pred._tau_b(np.ones(6), y) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_planted_pair_specific_predictor_is_detected_within_targets(seed):
    ratios, _, _, interaction = planted(6, 0.3, 1.0, 1.0, seed=seed)
    scores = interaction + 0.3 * np.random.default_rng(seed + 100).standard_normal(interaction.shape)
    tau, p = pred.within_tau_test(scores, ratios, n_perm=2000, seed=seed)
    assert tau > 0.3 and p < 0.05
    assert pred.within_tau_game_test(scores, ratios)[1] < 0.05


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_predictor_that_only_knows_target_ease_is_not_detected_within_targets(seed):
    ratios, _, target, _ = planted(6, 0.3, 2.0, 0.3, seed=seed)
    scores = np.broadcast_to(target[None, :], ratios.shape).copy()
    assert pred.within_tau(scores, ratios) == 0.0  # constant within every target
    assert pred.within_tau_test(scores, ratios, n_perm=2000, seed=seed)[1] > 0.5
    assert pred.pooled_spearman_ci(scores, ratios, n_boot=200, seed=seed)[0] > 0.7  # yet it correlates pooled


def test_group_taus_are_each_targets_tau_and_average_to_the_within_tau():
    ratios = np.array([[np.nan, 1.0, 3.0], [2.0, np.nan, 1.0], [1.0, 2.0, np.nan], [3.0, 0.0, 2.0]])
    scores = np.array([[9.0, 1.0, 5.0], [5.0, 7.0, np.nan], [1.0, 2.0, 3.0], [7.0, 2.0, np.nan]])
    taus = pred.group_taus(scores, ratios)
    assert taus[0] == pytest.approx(1.0)  # sources 1, 2, 3 in R's order
    assert taus[1] == pytest.approx(scipy.stats.kendalltau([1.0, 2.0, 2.0], [1.0, 2.0, 0.0])[0])  # with a tie
    assert np.isnan(taus[2])  # one cell with both values
    assert pred.within_tau(scores, ratios) == pytest.approx(np.nanmean(taus))
    assert pred.group_taus(scores, ratios, "source")[3] == pytest.approx(1.0)  # its two cells agree


def test_the_leave_one_out_references_leave_the_pair_out():
    ratios, *_ = planted(4, 1.0, 1.0, 1.0, seed=9)
    ease, quality = pred.target_ease(ratios), pred.source_quality(ratios)
    assert ease[0, 1] == pytest.approx((ratios[2, 1] + ratios[3, 1]) / 2)
    assert quality[0, 1] == pytest.approx((ratios[0, 2] + ratios[0, 3]) / 2)
    assert pred.within_tau(ease, ratios) == pytest.approx(-1.0)  # by construction
    assert np.isnan(ease[1, 1])


def test_the_game_test_holds_its_level_where_the_within_target_test_does_not():
    """A score that only knows its source, unrelated to R, against an R with a strong source effect."""
    rng = np.random.default_rng(10)
    p_within, p_games = [], []
    for k in range(150):
        ratios = 2.0 * rng.standard_normal((5, 1)) + rng.standard_normal((5, 5))
        ratios[~off_diagonal(5)] = np.nan
        scores = np.broadcast_to(rng.standard_normal((5, 1)), (5, 5)).copy()
        p_within.append(pred.within_tau_test(scores, ratios, n_perm=300, seed=k)[1])
        p_games.append(pred.within_tau_game_test(scores, ratios)[1])
    assert np.mean(np.array(p_games) <= 0.05) <= 0.08
    assert np.mean(np.array(p_within) <= 0.05) > 0.08


def block(n_games: int, n_targets: int) -> np.ndarray:
    """A held-out block's cells, (sources, targets): every game a source, the last ``n_targets`` games targets,
    no game into itself."""
    return off_diagonal(n_games)[:, n_games - n_targets:]


def test_the_source_test_finds_a_planted_predictor_on_a_held_out_block():
    observed = block(7, 3)
    ratios = planted(7, 0.3, 1.0, 1.0, seed=4)[0][:, 4:]
    interaction = planted(7, 0.3, 1.0, 1.0, seed=4)[3][:, 4:]
    scores = interaction + 0.3 * np.random.default_rng(5).standard_normal(interaction.shape)
    scores[~observed] = np.nan  # no score for a game into itself: left out where relabelled onto R
    assert np.isnan(ratios[~observed]).all()
    tau, p = pred.within_tau_source_test(scores, ratios)
    assert tau == pytest.approx(pred.within_tau(scores, ratios)) and tau > 0.4 and p < 0.01
    assert pred.within_tau_source_test(-scores, ratios)[1] > 0.9
    sampled = pred.within_tau_source_test(scores, ratios, n_perm=999, seed=1)
    assert sampled[0] == tau and sampled[1] == pytest.approx(p, abs=0.01)
    # 4 sources: 24 orderings, exact, so p is a multiple of 1/24
    p4 = pred.within_tau_source_test(scores[3:], ratios[3:])[1]
    assert abs(p4 * 24 - round(p4 * 24)) < 1e-9


def test_the_source_test_holds_its_level_where_the_within_target_test_does_not():
    """As the game test above, on a block: a score that only knows its source, R with a strong source effect."""
    rng = np.random.default_rng(11)
    observed = block(6, 4)
    p_within, p_sources = [], []
    for k in range(150):
        ratios = 2.0 * rng.standard_normal((6, 1)) + rng.standard_normal((6, 4))
        ratios[~observed] = np.nan
        scores = np.broadcast_to(rng.standard_normal((6, 1)), (6, 4)).copy()
        p_within.append(pred.within_tau_test(scores, ratios, n_perm=300, seed=k)[1])
        p_sources.append(pred.within_tau_source_test(scores, ratios)[1])
    assert np.mean(np.array(p_sources) <= 0.05) <= 0.08
    assert np.mean(np.array(p_within) <= 0.05) > 0.08


def test_the_pooled_spearman_of_a_block_resamples_its_games():
    ratios, _, _, interaction = planted(6, 0.0, 0.0, 1.0, seed=12)
    games = [f"g{i}" for i in range(6)]
    square = pred.pooled_spearman_ci(interaction, ratios, n_boot=300, seed=3)
    assert pred.pooled_spearman_ci(interaction, ratios, n_boot=300, seed=3, games=(games, games)) == square
    rho, low, high = pred.pooled_spearman_ci(interaction[:, 3:], ratios[:, 3:], n_boot=300, seed=3,
                                             games=(games, games[3:]))
    cells = block(6, 3)
    assert rho == pytest.approx(scipy.stats.spearmanr(interaction[:, 3:][cells], ratios[:, 3:][cells])[0])
    assert rho == 1.0 and low == pytest.approx(1.0) and high == pytest.approx(1.0)  # scores are R: all agree
    with pytest.raises(ValueError, match="sources, targets"):
        pred.pooled_spearman_ci(interaction[:, 3:], ratios[:, 3:], games=(games, games))


def test_top1_regret_auroc_and_pooled_spearman_on_a_hand_made_matrix():
    ratios = np.array([[np.nan, 0.5, -0.2], [0.1, np.nan, -0.4], [0.3, 0.2, np.nan]])
    perfect = ratios.copy()
    assert pred.top1_regret(perfect, ratios) == 0.0
    assert pred.top1_regret(-perfect, ratios) == pytest.approx((0.2 + 0.3 + 0.2) / 3)
    assert pred.top1_regret(np.zeros((3, 3)), ratios) == pytest.approx((0.1 + 0.15 + 0.1) / 3)  # random choice
    assert pred.auroc_transfer_helps(perfect, ratios) == 1.0
    assert pred.auroc_transfer_helps(-perfect, ratios) == 0.0
    assert np.isnan(pred.auroc_transfer_helps(perfect, np.abs(ratios)))
    point, low, high = pred.pooled_spearman_ci(perfect, ratios, n_boot=200)
    assert point == 1.0 and low == high == 1.0


# ------------------------------------------------------------------------------------------ power

def test_the_power_simulation_matches_the_closed_form_on_one_target():
    """One target, 12 sources, no source effect or noise: the permutation test of Kendall's tau against its
    normal approximation. 999 permutations lose a little power against the infinite-permutation test."""
    closed = pred.kendall_power_normal(12, 0.5)
    power, se = pred.simulate_power(np.ones((12, 1), bool), 0.5, n_sim=1000, n_perm=999, seed=3)
    assert abs(power - closed) < 3 * se
    size, se = pred.simulate_power(np.ones((12, 1), bool), 0.0, n_sim=1000, n_perm=199, seed=4)
    assert abs(size - 0.05) < 3 * se
    assert pred.kendall_power_normal(12, 0.0) == pytest.approx(0.05)
    # on one target, relabelling the sources is permuting them within it: the same power
    relabelled, se = pred.simulate_power(np.ones((12, 1), bool), 0.5, n_sim=400, n_perm=499, seed=6,
                                         relabel_sources=True)
    assert abs(relabelled - closed) < 3 * se


def test_power_falls_with_source_effects_and_noise():
    design = off_diagonal(5)
    clean, se = pred.simulate_power(design, 0.8, n_sim=300, n_perm=199, seed=5)
    muddy, _ = pred.simulate_power(design, 0.8, source_variance=4.0, noise_variance=1.0, n_sim=300, n_perm=199,
                                   seed=5)
    assert clean > muddy + 5 * se


# ------------------------------------------------------------------------------------------ Holm

def test_holm_adjusts_as_the_textbook_example():
    """Holm (1979) as Wikipedia's example: p = 0.01, 0.04, 0.03, 0.005 at alpha 0.05 rejects the 1st and 4th."""
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert np.allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert list(adjusted <= 0.05) == [True, False, False, True]
    assert np.allclose(holm([0.2, 0.01, 0.6]), [0.4, 0.03, 0.6])
    with pytest.raises(ValueError):
        holm([0.1, np.nan])
