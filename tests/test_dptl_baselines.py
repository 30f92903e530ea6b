"""The predictors DPTL must beat, on hand-made frames, and the validation's area ratios from the committed curves."""
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy.stats import ortho_group

from jaxfer.dptl import baselines
from jaxfer.networks import actor_critic
from jaxfer.runtime import files
from jaxfer.transfer import area_ratio
from jaxfer.transfer import predictability as pred

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import dptl_validation  # noqa: E402


def _frames(seed, n=8, size=32):
    """Random sparse 'objects' on black, like game frames."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, size, size)) > 0.9).astype(np.float32)


def test_identical_frames_score_one_on_the_frame_baselines():
    f = _frames(0)
    assert baselines.mean_frame_ssim(f, f) == pytest.approx(1.0, abs=1e-5)
    assert baselines.mask_iou(f, f, block_size=7) == pytest.approx(1.0)


def test_disjoint_masks_have_iou_zero_and_partial_overlap_lies_between():
    left, right = np.zeros((4, 32, 32), np.float32), np.zeros((4, 32, 32), np.float32)
    left[:, 10:14, 4:8] = 1
    right[:, 10:14, 24:28] = 1
    assert baselines.mask_iou(left, right, block_size=7) == 0.0
    both = np.maximum(left, right)
    assert 0.3 < baselines.mask_iou(left, both, block_size=7) < 0.7  # half of both's mask is left's


def test_unrelated_frames_score_lower_ssim_than_similar_ones():
    a, b = _frames(0, n=64), _frames(1, n=64)
    shifted = np.roll(a, 1, axis=-1)
    assert baselines.mean_frame_ssim(a, a[::-1]) > baselines.mean_frame_ssim(a, shifted)
    assert baselines.mean_frame_ssim(a, b) < 0.5


def test_cka_is_one_for_identical_and_invariant_to_rotation_and_isotropic_scaling():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6))
    q = ortho_group.rvs(6, random_state=1)
    assert baselines.linear_cka(x, x) == pytest.approx(1.0)
    assert baselines.linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0)
    y = rng.normal(size=(50, 4))
    q4 = ortho_group.rvs(4, random_state=2)
    assert baselines.linear_cka(x @ q, 0.5 * y @ q4) == pytest.approx(baselines.linear_cka(x, y))
    assert baselines.linear_cka(x, y) < 0.5
    stretched = x * np.array([10.0, 1, 1, 1, 1, 1])  # anisotropic scaling changes it
    assert baselines.linear_cka(x, stretched) < 0.9


def test_activation_cka_ignores_frame_order_and_is_one_for_the_same_frames():
    net = actor_critic.ActorCritic(3, actor_critic.MINATAR_CONVS, 16)
    rng = np.random.default_rng(0)
    obs = (rng.random((40, 10, 10, 8)) > 0.8).astype(np.uint8) * 255
    other = (rng.random((40, 10, 10, 8)) > 0.5).astype(np.uint8) * 255
    params = net.init(jax.random.PRNGKey(0), obs[:1])
    assert baselines.activations(net, params, obs, "conv_0").shape == (40, 8 * 8 * 16)
    same = baselines.activation_cka(net, params, obs, obs, "conv_0")
    shuffled = baselines.activation_cka(net, params, obs, obs[rng.permutation(40)], "conv_0")
    assert same == pytest.approx(1.0) and shuffled == pytest.approx(1.0)
    assert baselines.activation_cka(net, params, obs, other, "conv_0") < same


def test_validation_recomputes_the_sweeps_area_ratios_from_its_per_seed_curves():
    committed = dptl_validation.RESULTS / "transfer" / "catch_fc_only_transfer"
    curves = dptl_validation.seed_curves(files.read_csv(committed / "curves.csv"), "first_n:2:frozen")
    assert curves["catch/v0", "catch/v1"].shape == curves["catch/v1", "catch/v1"].shape == (5, 20)
    for row in files.read_csv(committed / "area_ratios.csv"):
        point, low, high = area_ratio.area_ratio_ci(curves[row["source"], row["target"]], curves[row["target"],
                                                                                                   row["target"]])
        assert [round(v, 4) for v in (point, low, high)] == [float(row[k]) for k in ("area_ratio", "ci_low", "ci_high")]


def test_the_held_out_block_reads_as_its_sources_by_its_targets():
    """The block's committed curves: R of (8 sources, 4 targets), NaN exactly where a game meets itself, equal
    to the sweep's area_ratios.csv and to the R its DPTL validation recorded."""
    import transfer_predictability
    domain = dptl_validation.DOMAINS["catch_holdout"]
    sources, targets, transfer, scratch, _ = transfer_predictability.areas(domain)
    assert len(sources) == 8 and targets == ["catch/v5", "catch/v6", "catch/v7", "catch/v8"]
    ratios = pred.ratio_matrix(transfer, scratch)
    assert np.isnan(ratios).sum() == 4 and all(np.isnan(ratios[sources.index(t), j]) for j, t in enumerate(targets))
    committed = dptl_validation.RESULTS / "transfer" / domain.config.stem / "area_ratios.csv"
    for row in files.read_csv(committed):
        assert ratios[sources.index(row["source"]), targets.index(row["target"])] == pytest.approx(
            float(row["area_ratio"]), abs=1e-4)
    _, recorded = transfer_predictability.committed_scores(
        dptl_validation.RESULTS / "dptl" / f"{domain.out}.csv", sources, targets)
    np.testing.assert_allclose(recorded, ratios, atol=1e-4)
