"""Learning test: the README's main job (configs/catch_dqn.yaml, unchanged) learns Catch-v0.

Budget: 40,000 env steps per seed (20 epochs), 4 seeds, about a minute on 2 CPU cores.
Threshold: the seed-mean greedy catch rate reaches >= 0.9 within the budget and the final epoch's
seed mean is still >= 0.85. (The best possible rate is about 0.95: the paddle moves 2 cells at a time,
so from an odd column it can never reach a ball landing in column 0 or 20.)
"""
import numpy as np
import pytest
from conftest import ROOT

from jaxfer import config
from jaxfer.runtime import plots, run, rundir


@pytest.mark.optimised
@pytest.mark.stack  # the one learning test .ci/run also runs on the accelerator host's stack
def test_dqn_learns_catch_v0_with_four_seeds(tmp_path):
    cfg = config.load(ROOT / "configs/catch_dqn.yaml")
    assert (cfg.seeds, cfg.total_steps, cfg.env, cfg.obs) == (4, 40_000, "catch/v0", "grid")
    run.train(cfg, tmp_path / "run", progress=False)
    rows = run.files.read_csv(tmp_path / "run" / rundir.METRICS)
    _, rates = plots.seed_matrix(rows, "eval_catch_rate")
    seed_mean = rates.mean(0)
    assert rates.shape == (4, 20)
    assert seed_mean.max() >= 0.9, seed_mean.round(3)
    assert seed_mean[-1] >= 0.85, seed_mean.round(3)
    assert seed_mean[:2].max() < 0.5  # it starts from chance, so the test measures learning
    assert np.all(rates[:, -1] >= 0.75), rates[:, -1]  # every seed learned, not just the mean
