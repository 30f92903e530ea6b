"""The model-based transfer predictors on hand-made inputs: a probe of features that contain the reward, a
trainability probe whose source already holds the features that solve the task, gradient agreement of identical
and of noise minibatches, the early-R probe of a source that already solves its target, known ranks and dormant
channels, returns by hand, MinAtar's action meanings; and `jaxfer predict`'s one-line errors."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import run_cli
from test_dptl_cli import make_run_dir

from jaxfer import config
from jaxfer.envs.base import Env
from jaxfer.runtime import run
from jaxfer.transfer import predictors as P

PENALTIES = P.PredictConfig.penalties
PAY = (0.25, 0.5, 1.0)  # the bandit's arms


@pytest.mark.parametrize("n, d", [(300, 40), (60, 200)])  # the primal and the dual (n <= d) branch
def test_ridge_probe_finds_a_reward_the_features_contain(n, d):
    """Features as a network's are: many units driven by a few factors, one of which is the reward."""
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(8, d))
    z, z_test = rng.normal(size=(2, n, 8))
    x, x_test = (f @ mixing + 0.1 * rng.normal(size=(n, d)) for f in (z, z_test))
    y, y_test = (np.stack([f[:, 0] - 0.5 * f[:, 3], rng.normal(size=n)], -1) for f in (z, z_test))
    everywhere = np.ones(n, bool)
    r2 = np.asarray(P.ridge_r2(*(np.float32(a) for a in (x, y)), everywhere, *(np.float32(a) for a in (x_test, y_test)),
                               everywhere, PENALTIES))
    assert r2[0] > 0.9  # the reward column
    assert -0.2 < r2[1] < 0.1  # a column the features lack: leave-one-out picks a large penalty, not an overfit


def test_ridge_probe_ignores_rows_of_weight_zero():
    rng = np.random.default_rng(1)
    x, x_test = rng.normal(size=(2, 200, 10)).astype(np.float32)
    y, y_test = (x @ np.arange(10.0, dtype=np.float32))[:, None], (x_test @ np.arange(10.0, dtype=np.float32))[:, None]
    keep = np.arange(200) < 150
    spoiled_y, spoiled_x = np.where(keep[:, None], y, 1e3), np.where(keep[:, None], x, -50.0)
    clean = P.ridge_r2(x[keep], y[keep], keep[keep], x_test, y_test, np.ones(200, bool), PENALTIES)
    weighted = P.ridge_r2(spoiled_x, spoiled_y, keep, x_test, y_test, np.ones(200, bool), PENALTIES)
    np.testing.assert_allclose(weighted, clean, atol=1e-4)
    constant = P.ridge_r2(x, y, np.ones(200, bool), x_test, np.zeros_like(y_test), np.ones(200, bool), PENALTIES)
    assert np.isnan(constant).all()  # no reward in the held-out rows: nothing to explain, not a perfect fit


def test_srank_and_dormant_channels():
    rng = np.random.default_rng(2)
    low_rank = rng.normal(size=(100, 3)) @ rng.normal(size=(3, 40))
    assert int(P.srank(jnp.asarray(low_rank, jnp.float32), 0.01)) == 3
    assert int(P.srank(jnp.eye(30), 0.01)) == 30  # equal singular values: all are needed
    acts = np.abs(rng.normal(size=(50, 4, 4, 8))).astype(np.float32)
    acts[..., [1, 6]] = 0.0  # two dead channels
    acts[..., 3] *= 1e-4  # one nearly dead: below tau of the mean
    assert float(P.dormant_fraction(acts, 0.025)) == pytest.approx(3 / 8)


def test_returns_by_hand():
    reward = jnp.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [2.0, 0.0]])  # (T, E)
    done = jnp.array([[False, True], [True, False], [False, False], [False, False]])
    returns, valid = P.mc_returns(reward, done, 0.5)
    np.testing.assert_allclose(returns[:, 0], [0.5, 1.0, 1.0, 2.0])
    np.testing.assert_allclose(returns[:, 1], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(valid, [[True, True], [True, False], [False, False], [False, False]])


def _regression_probe(x, y, x_test, y_test, freeze, batches=None):
    """A two-layer regression as a Probe: the features layer frozen where ``freeze`` says, Adam on the rest;
    ``batches`` ((K, B, d) inputs, (K, B) targets): the minibatches of its ``grad``."""
    def loss(params, xs, ys):
        hidden = jax.nn.relu(xs @ params["features"])
        return jnp.mean((hidden @ params["head"] - ys) ** 2)

    labels = {k: "frozen" if freeze and k == "features" else "train" for k in ("features", "head")}
    tx = optax.multi_transform({"train": optax.adam(3e-2), "frozen": optax.set_to_zero()}, labels)

    def step(state, k):
        params, opt = state
        grads = jax.grad(loss)(params, x, y)
        grads = P.stop_frozen_grads(grads, {k: v == "frozen" for k, v in labels.items()})
        updates, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), opt), optax.tree.norm(grads)

    def grad(params, k):
        return P.stop_frozen_grads(jax.grad(loss)(params, jnp.asarray(batches[0])[k], jnp.asarray(batches[1])[k]),
                                   {k: v == "frozen" for k, v in labels.items()})

    return P.Probe(lambda p: (p, tx.init(p)), step, lambda p: loss(p, x_test, y_test), lambda s: s[0], grad)


def test_trainability_of_a_source_that_solves_the_target_beats_fresh_inits():
    """The source's features are the target's own (the model a target-trained agent would have): with them
    frozen, a fresh head fits the held-out loss further in the same steps than any fresh init does."""
    rng = np.random.default_rng(3)
    solved = rng.normal(size=(8, 16)).astype(np.float32)
    x, x_test = rng.normal(size=(2, 256, 8)).astype(np.float32)
    y, y_test = (jax.nn.relu(x @ solved).sum(-1) for x in (x, x_test))
    probes = [_regression_probe(x, y, x_test, y_test, f) for f in (True, False)]
    head = jnp.asarray(rng.normal(size=16).astype(np.float32)) * 0.1
    drops = []
    for seed in range(4):
        fresh = {"features": jax.random.normal(jax.random.PRNGKey(seed), (8, 16)), "head": head}
        source = fresh | {"features": jnp.asarray(solved)}
        out = P.trainability(*probes, source, fresh, 200)
        drops.append((float(out["log_drop_transfer"]), float(out["log_drop_fresh"])))
        assert float(out["grad_norm_transfer"]) > 0
    assert all(t > f for t, f in drops), drops


def test_gradient_agreement_is_one_for_one_repeated_batch_and_low_on_noise_targets():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(8, 64, 8)).astype(np.float32)
    params = {"features": jnp.asarray(rng.normal(size=(8, 16)), jnp.float32), "head": jnp.zeros(16)}  # predicts 0
    solved = rng.normal(size=(8, 16)).astype(np.float32)
    signal = jax.nn.relu(x @ solved).sum(-1)  # every batch asks for the same function
    noise = rng.normal(size=(8, 64)).astype(np.float32) * 3

    def agreement(inputs, targets):
        probe = _regression_probe(None, None, None, None, True, (inputs, targets))
        return float(P.grad_agreement(probe, params, 8))

    repeated = agreement(np.broadcast_to(x[:1], x.shape), np.broadcast_to(signal[:1], signal.shape))
    assert repeated == pytest.approx(1.0, abs=1e-5)
    assert agreement(x, signal) > 0.5 > agreement(x, noise), (agreement(x, signal), agreement(x, noise))
    frozen = _regression_probe(None, None, None, None, True, (x, signal)).grad(params, 0)
    assert not np.asarray(frozen["features"]).any()  # the frozen layer is no part of the cosine


def _bandit():
    """One-step episodes of one constant observation; arm k pays PAY[k] (no zero: an area is never 0)."""
    pay, obs = jnp.array(PAY), jnp.ones((3, 3, 1), jnp.uint8)

    def step(state, action, key):
        r = pay[action]
        return state, obs, r, jnp.bool_(True), {"episode_return": r, "episode_length": jnp.int32(1)}

    return Env("bandit", 3, obs.shape, np.uint8, reset=lambda key: ((), obs), step=step)


def test_early_r_ranks_the_targets_own_solution_above_a_random_source():
    """A source whose Q-values are the bandit's (the model training on it converges to) plays the paying arm
    from the first evaluation; a random source is one more fresh init. As on Catch (1000 of the first 2000
    steps), most of the window comes before learning_starts: a bandit is learned in a few updates."""
    cfg = config.load(None, ["network=mlp", "seeds=4", "num_envs=8", "total_steps=3200", "epoch_steps=320",
                             "learning_starts=120", "eval_envs=8", "eval_steps=2", "eps_decay_steps=160"])
    env = _bandit()
    random = run.init_params(cfg, env)
    solved = jax.tree.map(lambda x: x, random)
    solved["params"]["head"] = {"kernel": jnp.zeros_like(random["params"]["head"]["kernel"]),
                                "bias": jnp.broadcast_to(jnp.array(PAY), (4, 3))}
    pcfg = P.PredictConfig(early_epochs=4)
    r = {name: P.early_r(P.Source("", cfg, env, params, "first_n:2"), env, pcfg)
         for name, params in (("solved", solved), ("random", random))}
    assert r["solved"]["early_steps"] == 160 and r["solved"]["early_epochs"] == 4  # 5% of 3200, 4 x 40 steps
    assert r["solved"]["early_r"] > max(r["random"]["early_r"], 0.0), r
    assert all(s >= 0 for s in r["solved"]["early_seconds"].values())
    # one scratch arm per target serves both sources, and gives each the R its own arm gave
    arms: dict = {}
    shared = {name: P.early_r(P.Source("", cfg, env, params, "first_n:2"), env, pcfg, arms)
              for name, params in (("solved", solved), ("random", random))}
    assert len(arms) == 1
    assert shared["solved"]["early_scratch_trained"] and not shared["random"]["early_scratch_trained"]
    assert {k: v["early_r"] for k, v in shared.items()} == {k: v["early_r"] for k, v in r.items()}


def test_minatar_actions_keep_their_meaning():
    to_seaquest = P.action_map("minatar/Breakout", "minatar/Seaquest", 3, 6)  # n l r -> n l u r d f
    np.testing.assert_array_equal(to_seaquest, [0, 1, 3])
    to_breakout = P.action_map("minatar/Seaquest", "minatar/Breakout", 6, 3)
    np.testing.assert_array_equal(to_breakout, [0, 1, -1, 2, -1, -1])
    policy = P.greedy(lambda obs: jnp.tile(jnp.arange(6.0), (len(obs), 1)), to_breakout)  # prefers f, then d
    np.testing.assert_array_equal(policy(jnp.zeros((2, 1)), None), [2, 2])  # r: the best action Breakout has
    with pytest.raises(P.PredictError, match="no shared meaning"):
        P.action_map("catch/v0", "minatar/Breakout", 3, 4)


def test_bad_sources_modes_and_targets_are_predict_errors(tmp_path):
    run = make_run_dir(tmp_path / "catch_run")
    for path, mode, needle in [(tmp_path / "nothing", "first_n:2:frozen", "no finished run"),
                               (run, "sideways:1", "unknown transfer mode"),
                               (run, "last_n:1", "copies no conv layer")]:
        with pytest.raises(P.PredictError, match=needle):
            P.load_source(path, mode)
    source = P.load_source(run, "first_n:2:frozen")
    for targets, pcfg, only, needle in [
            (["catch/v1", "minatar/Breakout"], P.PredictConfig(), P.PREDICTORS, "observations of shape"),
            (["catch/v1"], P.PredictConfig(), ["grad_agreement", "luck"], "unknown predictor 'luck'"),
            (["catch/v1"], P.PredictConfig(transitions=256), ["grad_agreement"], "agreement_batch_size"),
            (["catch/v1"], P.PredictConfig(early_fraction=0.01), ["early_r"], "before learning_starts")]:
        with pytest.raises(P.PredictError, match=needle):  # checked before catch/v1 is scored
            P.predict(source, targets, pcfg, only)


def test_gradient_agreement_of_a_real_agent_is_a_cosine(tmp_path):
    source = P.load_source(make_run_dir(tmp_path / "catch_run"), "first_n:2:frozen")
    pcfg = P.PredictConfig(transitions=256, agreement_batches=4, agreement_batch_size=32)
    [row] = P.predict(source, ["catch/v1"], pcfg, ["grad_agreement"])
    assert -2 <= row["grad_agreement"] <= 2 and set(row["seconds"]) == {"grad_agreement"}
    assert "trainability" not in row  # only what was asked


@pytest.mark.cli
def test_predict_bad_input_is_one_line(tmp_path):
    r = run_cli("predict", make_run_dir(tmp_path / "catch_run"), "catch/v1", "--mode", "last_n:1")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "copies no conv layer" in r.stderr, r.stderr
