"""examples/dqn_catch.py, the one-file DQN, runs; and (slow) learns Catch to the level `jaxfer train` does.

Slow test budget: configs/catch_dqn.yaml's 40,000 env steps per seed, 2 seeds each (0 and 1).
Threshold: the mean greedy catch rate over the last 5 epochs (seeds averaged) is >= 0.8 for both, and the
two differ by at most 0.1 (seed-to-seed spread at this budget is about that large).
"""
import importlib.util
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT

from jaxfer import config
from jaxfer.runtime import files, plots, run, rundir


def _example():
    spec = importlib.util.spec_from_file_location("dqn_catch", ROOT / "examples" / "dqn_catch.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # flax modules are dataclasses, which look their module up there
    spec.loader.exec_module(module)
    return module


def _train_example(overrides: dict, seeds: int) -> np.ndarray:
    example = _example()
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(seeds))
    _, rates = jax.jit(jax.vmap(example.make_train(example.CONFIG | overrides)))(keys)
    return np.asarray(rates)


@pytest.mark.optimised
def test_the_example_runs_and_keeps_jaxfer_hyper_parameters():
    example = _example()
    cfg = config.load(ROOT / "configs" / "catch_dqn.yaml")
    for key, value in example.CONFIG.items():
        assert getattr(cfg, key) == value, key  # the same experiment as configs/catch_dqn.yaml
    rates = _train_example({"total_steps": 800, "epoch_steps": 400, "learning_starts": 200}, seeds=2)
    assert rates.shape == (2, 2) and np.all((rates >= 0) & (rates <= 1))


@pytest.mark.slow
def test_the_example_and_jaxfer_train_learn_catch_to_the_same_level(tmp_path):
    example_rates = _train_example({}, seeds=2)
    cfg = config.load(ROOT / "configs" / "catch_dqn.yaml", ["seeds=2", "tensorboard=false"])
    run.train(cfg, tmp_path / "run", progress=False)
    _, jaxfer_rates = plots.seed_matrix(files.read_csv(tmp_path / "run" / rundir.METRICS), "eval_catch_rate")
    late_example, late_jaxfer = example_rates.mean(0)[-5:].mean(), jaxfer_rates.mean(0)[-5:].mean()
    assert late_example >= 0.8 and late_jaxfer >= 0.8, (late_example, late_jaxfer)
    assert abs(late_example - late_jaxfer) <= 0.1, (late_example, late_jaxfer)
