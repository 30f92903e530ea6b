"""DQV / DQV-Max: targets checked by hand on lookup tables; learning on Catch-v0 (slow)."""
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT

from jaxfer import config
from jaxfer.agents import dqv
from jaxfer.replay import uniform
from jaxfer.runtime import plots, run, rundir


class TableNet:  # f(s) = params[s]
    @staticmethod
    def apply(params, obs):
        return params[obs[:, 0]]


PARAMS = {"q": jnp.array([[1.0, 2.0], [3.0, 0.0], [0.0, 0.0]]), "v": jnp.array([[0.5], [4.0], [9.0]])}
TARGET = {"q": jnp.array([[0.0, 0.0], [10.0, 20.0], [5.0, 7.0]]), "v": jnp.array([[0.0], [6.0], [8.0]])}
BATCH = uniform.Transition(obs=jnp.array([[0], [0]]), action=jnp.array([1, 0]), reward=jnp.array([1.0, 2.0]),
                          done=jnp.array([0.0, 1.0]), next_obs=jnp.array([[1], [2]]))


def huber(x):
    return np.where(np.abs(x) <= 1, 0.5 * x**2, np.abs(x) - 0.5)


@pytest.mark.parametrize("use_max", [False, True])
def test_dqv_targets_by_hand(use_max):
    cfg = config.load(None, ["gamma=0.5"])
    q_taken, v = np.array([2.0, 1.0]), np.array([0.5, 0.5])
    if use_max:  # V <- r + g max_a Q-(s'); Q <- r + g V(s') with the online V
        y_v = np.array([1.0 + 0.5 * 20.0, 2.0])
        y_q = np.array([1.0 + 0.5 * 4.0, 2.0])
    else:  # both <- r + g V-(s')
        y_v = y_q = np.array([1.0 + 0.5 * 6.0, 2.0])
    expected = huber(y_q - q_taken).mean() + ((y_v - v) ** 2).mean()
    got = dqv.dqv_loss(TableNet, TableNet, cfg, use_max, PARAMS, TARGET, BATCH)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["dqv", "dqv_max"])
def test_dqv_learns_catch_v0(tmp_path, agent):
    """Budget: configs/catch_dqn.yaml (40k env steps per seed, 4 seeds) with agent swapped.
    Threshold: the seed-mean greedy catch rate reaches >= 0.85 and starts below 0.5."""
    cfg = config.load(ROOT / "configs/catch_dqn.yaml", [f"agent={agent}"])
    run.train(cfg, tmp_path / agent, progress=False)
    _, rates = plots.seed_matrix(run.files.read_csv(tmp_path / agent / rundir.METRICS), "eval_catch_rate")
    assert rates.shape[0] == 4
    assert rates.mean(0)[:2].max() < 0.5
    assert rates.mean(0).max() >= 0.85, rates.mean(0).round(3)
