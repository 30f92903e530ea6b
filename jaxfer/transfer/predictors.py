"""Predictors of transfer that need the source model and the target game, but no transfer run.

Each is a pure function of (source model, target game), batched over the source's seeds and jitted:

- ``trainability``: the drop log(L_0 / L_K) of the TD loss (a value-based agent's own loss; an actor-critic's critic
  loss, the A2C loss being what its steps minimise) over ``sgd_steps`` gradient steps on random-policy target
  transitions, measured on held-out ones, from the transferred parameters (frozen as the mode says) minus the
  same from the fresh initialisation that transfer run started from (seed i of the sweep: paired);
- ``grad_norm``: log of the norm of the loss gradient at the start, on the layers the transfer trains,
  transferred over fresh (how much signal the new layers get through the copied ones);
- ``grad_agreement``: the mean pairwise cosine of the loss gradients (same layers) of disjoint minibatches at
  the start, transferred minus fresh (whether the copied features make the minibatches pull the same way);
- ``dormant`` (minus the fraction of tau-dormant channels, Sokar et al. 2023) and ``feature_rank`` (srank,
  Kumar et al. 2021) of the deepest transferred layer's activations on target states;
- ``probe_reward`` / ``probe_return``: held-out ridge R^2 of target rewards / the random policy's discounted
  returns from those activations (Zhang et al. 2022 ranked Atari encoders by such probes);
- ``jumpstart``: the source's greedy policy's zero-shot return on the target minus a random policy's, actions
  matched by meaning (MinAtar's full action set: an action the target lacks is never chosen);
- ``early_r``: the area ratio of a short fine-tuning, the first ``early_fraction`` of the source run's budget
  (the sweep's) trained as the transfer would be and from scratch, on seeds the sweep never used. It costs
  training, the others do not.

Transitions come from a uniform random policy: the same for every source, so any difference is the model's.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxfer import agents, envs, mesh
from jaxfer.agents import a2c, targets
from jaxfer.agents.loop import Rollout
from jaxfer.agents.value_based import stop_frozen, with_freeze
from jaxfer.code_path import CodePath
from jaxfer.config import TrainConfig
from jaxfer.errors import JaxferError
from jaxfer.networks import actor_critic
from jaxfer.networks.layers import layer_names
from jaxfer.replay import uniform
from jaxfer.runtime import rundir, seed_axis
from jaxfer.transfer import area_ratio, surgery, sweep

PREDICTORS = ("trainability", "grad_norm", "grad_agreement", "dormant", "feature_rank", "probe_reward",
              "probe_return", "jumpstart", "early_r")


class PredictError(JaxferError):
    """A source, target or mode the predictors cannot take: one line naming the problem."""


@dataclasses.dataclass(frozen=True)
class PredictConfig:
    transitions: int = 2048  # random-policy target transitions in each of the fit and held-out sets
    sgd_steps: int = 200  # gradient steps of the trainability probe
    agreement_batches: int = 8  # disjoint minibatches of gradient agreement (an actor-critic: rollout windows)
    agreement_batch_size: int = 64  # transitions in each (value-based agents)
    penalties: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # ridge, x mean squared singular value
    dormant_tau: float = 0.025  # a channel is dormant below tau x the layer's mean activation
    rank_delta: float = 0.01  # srank keeps the singular values that sum to 1 - delta of the total
    early_fraction: float = 0.05  # of the source run's training budget, for early_r
    early_epochs: int = 4  # evaluations over it (an area needs two)
    early_seed: int = 1000  # early_r's first seed: the sweep's seeds start at 0
    seed: int = 0


# ---------------------------------------------------------------- data


def collect(env: envs.Env, steps: int, num_envs: int, seed: int) -> Rollout:
    """(steps, num_envs) transitions of a uniform random policy, one jitted scan."""
    pool = envs.pool(env, 1, num_envs, seed)
    k_reset, k_act = jax.random.split(jax.random.PRNGKey(seed))
    state, obs = pool.reset(k_reset[None])

    def body(carry, key):
        state, obs, first = carry
        action = jax.random.randint(key, (1, num_envs), 0, env.num_actions)
        state, next_obs, reward, done, _ = pool.step(state, action)
        return (state, next_obs, done), Rollout(obs[0], action[0], reward[0], done[0], next_obs[0], first[0])

    play = jax.jit(lambda s, o, keys: jax.lax.scan(body, (s, o, jnp.ones((1, num_envs), bool)), keys)[1])
    return play(state, obs, jax.random.split(k_act, steps))


def mc_returns(reward, done, gamma: float) -> tuple[jax.Array, jax.Array]:
    """(discounted returns (T, E), valid (T, E)): a return is valid where its episode ends inside the rollout."""
    chex.assert_equal_shape([reward, done])
    discount = gamma * (1.0 - done.astype(jnp.float32))
    returns = jax.vmap(targets.discounted_returns, in_axes=(1, 1, None), out_axes=1)(reward, discount, 0.0)
    valid = jnp.flip(jnp.cumsum(jnp.flip(done.astype(jnp.int32), 0), 0), 0) > 0
    return returns, valid


def features(net, params, obs, layer: str) -> jax.Array:
    """The ReLU activations (N, H, W, C) of conv ``layer`` on observations (N, ...)."""
    _, sown = net.apply(params, obs, mutable=["activations"])
    return sown["activations"][f"{layer}_relu"][0]


# ---------------------------------------------------------------- statistics of features


def dormant_fraction(activations, tau: float) -> jax.Array:
    """Fraction of channels whose mean |activation| is at most tau x the mean over channels (Sokar et al.)."""
    per_channel = jnp.abs(activations).reshape(-1, activations.shape[-1]).mean(axis=0)
    return jnp.mean(per_channel <= tau * jnp.maximum(per_channel.mean(), 1e-12))


def _gram_eigen(x) -> tuple[jax.Array, jax.Array]:
    """(eigenvalues, eigenvectors) of x's smaller Gram matrix (x x^T or x^T x): x's squared singular values at
    the cost of an eigh of min(N, D) (an SVD of the whole matrix is several times slower on XLA CPU)."""
    gram = x @ x.T if x.shape[0] <= x.shape[1] else x.T @ x
    e, v = jnp.linalg.eigh(gram)
    return jnp.maximum(e, 0.0), v


def srank(x, delta: float) -> jax.Array:
    """Effective rank of x (N, D): the fewest singular values that sum to (1 - delta) of their total."""
    s = jnp.sort(jnp.sqrt(_gram_eigen(x)[0]))[::-1]
    share = jnp.cumsum(s) / jnp.maximum(s.sum(), 1e-12)
    return jnp.sum(share < 1 - delta) + 1


def ridge_r2(x_fit, y_fit, w_fit, x_test, y_test, w_test, penalties) -> jax.Array:
    """Held-out R^2 (K,) of ridge regressions of each column of y (N, K) on x (N, D). Rows weigh w (0 or 1:
    which rows count); features standardised on the fit set; each column's penalty (times the mean squared
    singular value) chosen by exact leave-one-out on the fit set. 1: y is linear in x; 0: no better than the
    fit set's mean of y; NaN where the held-out y is constant."""
    chex.assert_rank([x_fit, y_fit, w_fit, x_test, y_test, w_test], [2, 2, 1, 2, 2, 1])
    w_fit, w_test = w_fit.astype(jnp.float32), w_test.astype(jnp.float32)
    n = jnp.maximum(w_fit.sum(), 1.0)
    mean = (w_fit[:, None] * x_fit).sum(0) / n
    scale = jnp.sqrt((w_fit[:, None] * (x_fit - mean) ** 2).sum(0) / n) + 1e-6
    y_mean = (w_fit[:, None] * y_fit).sum(0) / n
    root = jnp.sqrt(w_fit)[:, None]
    a, b = root * (x_fit - mean) / scale, root * (y_fit - y_mean)
    e, v = _gram_eigen(a)
    dual = x_fit.shape[0] <= x_fit.shape[1]
    p = v if dual else a @ v  # fitted = p diag(g) p^T b: g = e / (e + lam) (dual), 1 / (e + lam) (primal)
    lambdas = jnp.asarray(penalties) * jnp.mean(e)

    def loo(lam):  # (K,) the leave-one-out squared error of each column
        g = e / (e + lam) if dual else 1 / (e + lam)
        hat = (p ** 2 * g).sum(1, keepdims=True) + w_fit[:, None] / n  # + the fitted mean's leverage
        residual = (b - p @ (g[:, None] * (p.T @ b))) / (1 - hat)
        return (w_fit[:, None] * residual ** 2).sum(0)

    lam = lambdas[jnp.argmin(jax.vmap(loo)(lambdas), axis=0)]  # (K,) each column's penalty
    coef = (a.T @ p if dual else v) @ ((p.T @ b) / (e[:, None] + lam))
    predicted = ((x_test - mean) / scale) @ coef + y_mean
    m = jnp.maximum(w_test.sum(), 1.0)
    w = w_test[:, None]
    total = (w * (y_test - (w * y_test).sum(0) / m) ** 2).sum(0)
    return jnp.where(total > 1e-12, 1 - (w * (y_test - predicted) ** 2).sum(0) / jnp.maximum(total, 1e-12),
                     jnp.nan)  # a constant y (no reward seen) has nothing to explain


# ---------------------------------------------------------------- trainability


class Probe(NamedTuple):
    """The target agent's own learning step on fixed transitions, as pure functions of its params."""

    init: Callable  # params -> state
    step: Callable  # (state, step index) -> (state, norm of the gradient on the trained layers)
    loss: Callable  # params -> the held-out TD loss
    params: Callable  # state -> params
    grad: Callable  # (params, k) -> the loss gradient of fit's k-th disjoint minibatch, zero on frozen layers


def make_probe(cfg: TrainConfig, env: envs.Env, fit: Rollout, test: Rollout, freeze=None, seed: int = 0,
               batch: int = 64) -> Probe:
    """A value-based agent: Adam on its loss over minibatches of ``fit`` (batch_size, drawn alike for every
    model), its target network held at the start; ``grad``'s minibatches: ``batch`` rows each of one shuffle of
    ``fit``. An actor-critic: its own update on successive (n_steps, E) windows of ``fit``, which are also
    ``grad``'s minibatches; the held-out loss is the critic's n-step loss (the A2C total mixes in a policy term
    whose sign says nothing of fit). ``freeze``: the transfer's frozen layers (None: train all)."""
    path = CodePath.from_config(cfg)
    if cfg.agent == "a2c":
        agent = agents.make_agent(cfg, env, freeze, path)
        memory = agent.initial_memory(cfg.num_envs)
        windows = fit.action.shape[0] // cfg.n_steps
        a2c_loss = a2c.make_loss(cfg, actor_critic.from_config(cfg, env.num_actions, path), freeze)

        def window(data, k):
            return jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, k * cfg.n_steps, cfg.n_steps), data)

        def grad(params, k):
            grads = jax.grad(lambda p: a2c_loss(p, window(fit, k), memory)[0])(params)
            return stop_frozen_grads(grads, freeze)

        def step(state, k):
            state, stats = agent.update(state, window(fit, k % windows), memory, 0)
            return state, stats["grad_norm"]

        def loss(params):
            state = agent.init(None, None, params)
            chunks = test.action.shape[0] // cfg.n_steps
            return jnp.mean(jax.lax.map(lambda k: agent.update(state, window(test, k), memory, 0)[1]["value_loss"],
                                        jnp.arange(chunks)))

        return Probe(lambda p: agent.init(None, None, p), step, loss, lambda state: state.params, grad)
    algo = agents.ALGORITHMS[cfg.agent](cfg, env.num_actions, path)
    tx = with_freeze(optax.adam(cfg.lr), freeze)
    flat = [uniform.Transition(d.obs.reshape(-1, *env.obs_shape), d.action.ravel(), d.reward.ravel(),
                               d.done.ravel().astype(jnp.float32), d.next_obs.reshape(-1, *env.obs_shape))
            for d in (fit, test)]
    key = jax.random.PRNGKey(seed)
    shuffle = jax.random.permutation(jax.random.split(key)[1], flat[0].action.shape[0])

    def grads_on(params, target, index):
        minibatch = jax.tree.map(lambda x: x[index], flat[0])
        return jax.grad(lambda p: algo.loss(stop_frozen(p, freeze), target, minibatch))(params)

    def step(state, k):
        params, target, opt_state = state
        index = jax.random.randint(jax.random.fold_in(key, k), (cfg.batch_size,), 0, flat[0].action.shape[0])
        grads = grads_on(params, target, index)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), target, opt_state), optax.tree.norm(
            stop_frozen_grads(grads, freeze))

    def grad(params, k):  # the target network at the start is the params themselves
        return stop_frozen_grads(grads_on(params, params, jax.lax.dynamic_slice_in_dim(shuffle, k * batch, batch)),
                                 freeze)

    return Probe(lambda p: (p, p, tx.init(p)), step, lambda p: algo.loss(p, p, flat[1]), lambda state: state[0],
                 grad)


def stop_frozen_grads(grads, freeze):
    """Zero for the frozen layers' leaves (their gradients are zero already under ``stop_frozen``)."""
    return grads if freeze is None else jax.tree.map(lambda g, f: jnp.zeros_like(g) if f else g, grads, freeze)


def trainability(probe_transfer: Probe, probe_fresh: Probe, transferred, fresh, steps: int) -> dict:
    """Per model (unbatched params): the drop log(L_0 / L_K) of the held-out loss over ``steps`` steps,
    transferred (its probe keeps the frozen layers) and fresh (trains every layer), and the gradient norm at the
    start on the layers the transfer trains, of both."""
    def drop(probe, params):
        state, _ = jax.lax.scan(lambda s, k: (probe.step(s, k)[0], None), probe.init(params), jnp.arange(steps))
        return jnp.log(probe.loss(params) / probe.loss(probe.params(state)))

    norm = lambda p: probe_transfer.step(probe_transfer.init(p), 0)[1]  # noqa: E731
    return {"log_drop_transfer": drop(probe_transfer, transferred), "log_drop_fresh": drop(probe_fresh, fresh),
            "grad_norm_transfer": norm(transferred), "grad_norm_fresh": norm(fresh)}


def grad_agreement(probe: Probe, params, batches: int) -> jax.Array:
    """Mean pairwise cosine similarity of the loss gradients of ``batches`` disjoint minibatches at ``params``
    (unbatched): 1 where every minibatch pulls the trained layers the same way, about 0 where each pulls its own
    way (the gradient coherence of Chatterjee 2020, Fort et al. 2019's stiffness)."""
    flat = jax.vmap(lambda k: ravel_pytree(probe.grad(params, k))[0])(jnp.arange(batches))
    chex.assert_rank(flat, 2)
    unit = flat / jnp.maximum(jnp.linalg.norm(flat, axis=1, keepdims=True), 1e-12)
    cosine = unit @ unit.T
    return (cosine.sum() - jnp.trace(cosine)) / (batches * (batches - 1))


# ---------------------------------------------------------------- jumpstart


def action_set(env_id: str) -> np.ndarray | None:
    """The full-set meaning of each action (MinAtar's n l u r d f), or None where actions have no shared meaning."""
    if env_id.startswith("minatar/"):
        import gymnax

        from jaxfer.envs import minatar
        return np.asarray(gymnax.make(minatar.GAMES[env_id])[0].action_set)
    return None


def action_map(source_id: str, target_id: str, source_actions: int, target_actions: int) -> np.ndarray:
    """(source actions,) the target action of the same meaning, -1 where the target has none."""
    a, b = action_set(source_id), action_set(target_id)
    if a is None or b is None:
        if source_actions != target_actions:
            raise PredictError(f"{source_id} has {source_actions} actions and {target_id} {target_actions}, "
                               f"with no shared meaning: the source cannot play the target")
        return np.arange(source_actions)
    where = {int(m): i for i, m in enumerate(b)}
    return np.array([where.get(int(m), -1) for m in a])


def policy_return(env: envs.Env, act: Callable, steps: int, num_envs: int, seed: int) -> jax.Array:
    """Mean return of the games ``act(obs (E, ...), key) -> target actions (E,)`` finishes in ``steps`` vector
    steps of ``num_envs`` envs; NaN if it finished none."""
    pool = envs.pool(env, 1, num_envs, seed)
    state, obs = pool.reset(jax.random.PRNGKey(seed)[None])

    def body(carry, key):
        state, obs = carry
        state, obs, _, _, info = pool.step(state, act(obs[0], key).astype(jnp.int32)[None])
        return (state, obs), (info["episode_return"][0], info["episode_end"][0])

    keys = jax.random.split(jax.random.PRNGKey(seed + 1), steps)
    _, (returns, ends) = jax.lax.scan(body, (state, obs), keys)
    return jnp.where(ends.any(), jnp.sum(returns * ends) / jnp.maximum(ends.sum(), 1), jnp.nan)


def greedy(scores: Callable, mapping) -> Callable:
    """The greedy policy of ``scores(obs) -> (E, source actions)`` over the actions the target has, as target
    actions (``mapping``: ``action_map``)."""
    mapping = jnp.asarray(mapping)
    return lambda obs, key: mapping[jnp.argmax(jnp.where(mapping >= 0, scores(obs), -jnp.inf), axis=-1)]


# ---------------------------------------------------------------- a short fine-tuning


def early_config(cfg: TrainConfig, pcfg: PredictConfig, seeds: int) -> TrainConfig:
    """The first ``early_fraction`` of ``cfg``'s training as it runs (every schedule unchanged: its start, not a
    shrunken copy), evaluated ``early_epochs`` times, on ``seeds`` seeds from ``early_seed``. An epoch is whole
    vector steps (rollouts for an actor-critic), so the fraction is rounded to them."""
    unit = cfg.num_envs * (cfg.n_steps if cfg.agent == "a2c" else 1)
    epoch = max(round(pcfg.early_fraction * cfg.total_steps / pcfg.early_epochs / unit), 1) * unit
    early = dataclasses.replace(cfg, total_steps=epoch * pcfg.early_epochs, epoch_steps=epoch, seeds=seeds,
                                seed=pcfg.early_seed, tensorboard=False)
    if early.agent != "a2c" and early.learning_starts >= early.total_steps:
        raise PredictError(f"early_r's {early.total_steps} steps ({pcfg.early_fraction:g} of {cfg.total_steps}) end "
                           f"before learning_starts ({early.learning_starts}): raise the fraction")
    return early


def learning_curves(cfg: TrainConfig, env: envs.Env, params, freeze) -> tuple[np.ndarray, float, float]:
    """(greedy-evaluation curves (seeds, epochs), seconds after compiling, compile seconds) of ``cfg.seeds``
    agents trained on ``env`` from ``params`` (seed axis first): ``jaxfer.runtime.run.train``'s loop without its
    files, the curve being the one the sweep's R is computed from (catch rate on Catch, return elsewhere)."""
    tick = time.perf_counter()
    trainer = agents.make_trainer(cfg, env, freeze=freeze)
    state = trainer.init(mesh.seed_keys(cfg.seed, cfg.seeds), params)
    epoch_fn, _ = seed_axis.compile_trainer(trainer, state, cfg.strategy)
    curve = []
    for _ in range(cfg.num_epochs):
        state, metrics = epoch_fn(state)
        metrics = mesh.fetch(metrics, cfg.seeds)
        curve.append(metrics["eval_catch_rate" if "eval_catch_rate" in metrics else "eval_return"])
    return np.stack(curve, 1), time.perf_counter() - tick - epoch_fn.compile_seconds, epoch_fn.compile_seconds


def early_r(source: Source, env: envs.Env, pcfg: PredictConfig = PredictConfig(),
            scratch_arms: dict | None = None) -> dict:
    """R of the source's transfer into ``env`` over the first ``early_fraction`` of the source run's budget: the
    transfer and scratch arms start seed i from the same fresh init (as the sweep pairs them), on seeds the sweep
    does not use, so the probe is not judged against its own noise. The scratch arm depends on the target and the
    training config only: ``scratch_arms`` (a dict the caller keeps across sources) holds it for the next source
    trained with that config, as a sweep's scratch run serves every source into its target."""
    from jaxfer.runtime import run
    name, n, frozen = sweep.parse_mode(source.mode)
    cfg = early_config(source.cfg, pcfg, source.seeds)
    fresh = run.init_params(cfg, env)
    transferred, freeze = surgery.apply(name, source.params, fresh, n=n, frozen=frozen)
    transfer = learning_curves(cfg, env, transferred, None if freeze is None else jax.tree.map(bool, freeze))
    arms = {} if scratch_arms is None else scratch_arms
    key = dataclasses.replace(cfg, env=env.id)
    trained = key not in arms
    if trained:
        arms[key] = learning_curves(cfg, env, fresh, None)
    scratch = arms[key]
    return {"early_r": area_ratio.area_ratio(transfer[0], scratch[0]), "early_steps": cfg.total_steps,
            "early_epochs": cfg.num_epochs, "early_seconds": {"transfer": transfer[1], "scratch": scratch[1]},
            "early_scratch_trained": trained, "early_compile_seconds": transfer[2] + (scratch[2] if trained else 0.0)}


# ---------------------------------------------------------------- one (source, target) pair


@dataclasses.dataclass(frozen=True)
class Source:
    """A finished run (seed axis first) and how it is transferred."""

    run_dir: str
    cfg: TrainConfig
    env: envs.Env
    params: dict
    mode: str  # a sweep mode, e.g. first_n:2:frozen

    @property
    def seeds(self) -> int:
        return len(jax.tree.leaves(self.params)[0])


def load_source(path, mode: str) -> Source:
    """A run directory and a transfer mode, checked: the mode must copy a conv layer (the feature predictors read
    its activations)."""
    run = rundir.load_finished(path, PredictError)
    try:
        name, n, frozen = sweep.parse_mode(mode)
        one = jax.tree.map(lambda x: x[0], _acting(run.cfg, run.params))
        copied = surgery.layers_for(name, one, n)
    except JaxferError as e:
        raise PredictError(f"mode '{mode}': {e}") from None
    if not [c for c in copied if c.startswith("conv")]:
        raise PredictError(f"mode '{mode}' copies no conv layer of {run.cfg.network} "
                           f"({', '.join(layer_names(one))}): the feature predictors need one")
    return Source(str(path), run.cfg, run.env, run.params, mode)


def _acting(cfg: TrainConfig, params):
    return params["q"] if cfg.agent in ("dqv", "dqv_max") else params


def _net(cfg: TrainConfig, num_actions: int):
    from jaxfer.networks import actor_critic, q_nets
    path = CodePath.from_config(cfg)
    return (actor_critic.from_config(cfg, num_actions, path) if cfg.agent == "a2c"
            else q_nets.make_network(cfg.network, num_actions, path))


def _target_env(source: Source, target: str) -> envs.Env:
    try:
        env = envs.make(target, source.cfg.obs)
    except envs.EnvError as e:
        raise PredictError(f"target '{target}': {e}") from None
    if env.obs_shape != source.env.obs_shape:
        raise PredictError(f"target '{target}' gives observations of shape {env.obs_shape} ({source.cfg.obs}), the "
                           f"source network takes {source.env.obs_shape}")
    return env


def predict(source: Source, targets, pcfg: PredictConfig = PredictConfig(), only=PREDICTORS,
            scratch_arms: dict | None = None) -> list[dict]:
    """The predictors ``only`` names of (source, target) for each target, each the mean over the source's seeds,
    with the seconds each took (``seconds``: after compiling; ``compile_seconds``: the first call's extra, paid
    once per action count: the probes do not depend on the target's dynamics, only the data do; early_r trains,
    so it compiles per target). Every target and the config are checked before any is scored. ``scratch_arms``:
    early_r's from-scratch arms, kept by a caller that scores several sources (see ``early_r``)."""
    unknown = [k for k in only if k not in PREDICTORS]
    if unknown:
        raise PredictError(f"unknown predictor '{unknown[0]}'; known: {', '.join(PREDICTORS)}")
    target_envs = {t: _target_env(source, t) for t in dict.fromkeys(targets)}
    steps = _probe_steps(source.cfg, pcfg)
    if source.cfg.agent == "a2c" and steps // source.cfg.n_steps < pcfg.agreement_batches:
        raise PredictError(f"{steps // source.cfg.n_steps} rollout windows hold fewer than agreement_batches "
                           f"({pcfg.agreement_batches}): raise transitions")
    if source.cfg.agent != "a2c" and steps * source.cfg.num_envs < pcfg.agreement_batches * pcfg.agreement_batch_size:
        raise PredictError(f"{steps * source.cfg.num_envs} transitions hold fewer than agreement_batches x "
                           f"agreement_batch_size ({pcfg.agreement_batches} x {pcfg.agreement_batch_size})")
    if "early_r" in only:
        early_config(source.cfg, pcfg, source.seeds)
    compiled: dict = {"warm": set()}  # action count -> the jitted passes; "warm": the functions called once
    return [{"target": t} | _predict_one(source, t, env, pcfg, compiled, set(only), scratch_arms)
            for t, env in target_envs.items()]


def _probe_steps(cfg: TrainConfig, pcfg: PredictConfig) -> int:
    """Vector steps of each random-policy set: ``transitions`` rounded up to whole steps (rollouts)."""
    steps = -(-pcfg.transitions // cfg.num_envs)
    return max(steps // cfg.n_steps, 1) * cfg.n_steps if cfg.agent == "a2c" else steps


def _predict_one(source: Source, target: str, env: envs.Env, pcfg: PredictConfig, compiled: dict, only: set,
                 scratch_arms: dict | None) -> dict:
    from jaxfer.runtime import run
    cfg = dataclasses.replace(source.cfg, env=target)
    name, n, frozen = sweep.parse_mode(source.mode)
    fresh = run.init_params(dataclasses.replace(cfg, seeds=source.seeds))  # what transfer seed i starts from
    transferred, freeze = surgery.apply(name, source.params, fresh, n=n, frozen=frozen)
    freeze = None if freeze is None else jax.tree.map(bool, freeze)
    copied = surgery.layers_for(name, jax.tree.map(lambda x: x[0], _acting(cfg, fresh)), n)
    layer = [c for c in copied if c.startswith("conv")][-1]

    steps = _probe_steps(cfg, pcfg)
    fit, test = (collect(env, steps, cfg.num_envs, pcfg.seed + k) for k in (0, 1))
    if env.num_actions not in compiled:
        compiled[env.num_actions] = _compile(source, cfg, env, freeze, layer, pcfg)
    train, agree, feature_stats, probes_r2 = compiled[env.num_actions]
    out, seconds, compile_seconds = {}, {}, {}

    def timed(key, fn, *args):  # a function's first call compiles: it runs again to be timed
        first = None
        if fn not in compiled["warm"]:
            tick = time.perf_counter()
            jax.block_until_ready(fn(*args))
            first = time.perf_counter() - tick
            compiled["warm"].add(fn)
        tick = time.perf_counter()
        value = jax.block_until_ready(fn(*args))
        seconds[key] = time.perf_counter() - tick
        compile_seconds[key] = 0.0 if first is None else max(first - seconds[key], 0.0)
        return value

    if only & {"trainability", "grad_norm"}:
        t = timed("trainability", train, transferred, fresh, fit, test)
        out["trainability"] = float(jnp.mean(t["log_drop_transfer"] - t["log_drop_fresh"]))
        out["grad_norm"] = float(jnp.mean(jnp.log(t["grad_norm_transfer"] / t["grad_norm_fresh"])))
        seconds["grad_norm"] = seconds["trainability"]  # one pass computes both

    if "grad_agreement" in only:
        out["grad_agreement"] = float(jnp.mean(timed("grad_agreement", agree, transferred, fresh, fit, test)))

    acting = _acting(source.cfg, source.params)
    obs = [d.obs.reshape(-1, *env.obs_shape) for d in (fit, test)]
    if only & {"dormant", "feature_rank"}:
        dormant, rank = timed("dormant", feature_stats, acting, obs[0])
        out["dormant"], out["feature_rank"] = -float(dormant.mean()), float(rank.astype(float).mean())
        seconds["feature_rank"] = seconds["dormant"]

    if only & {"probe_reward", "probe_return"}:
        returns, valid = zip(*(mc_returns(d.reward, d.done, cfg.gamma) for d in (fit, test)))
        y = [jnp.stack([d.reward.ravel(), r.ravel()], -1) for d, r in zip((fit, test), returns)]
        r2 = timed("probe_reward", probes_r2, acting, obs, y, [v.ravel() for v in valid])
        out["probe_reward"], out["probe_return"] = (float(v) for v in r2.mean(axis=0))
        seconds["probe_return"] = seconds["probe_reward"]

    if "jumpstart" in only:
        net = _net(source.cfg, source.env.num_actions)
        mapping = action_map(source.cfg.env, target, source.env.num_actions, env.num_actions)
        play = jax.jit(jax.vmap(lambda p: policy_return(env, greedy(lambda o: net.apply(p, o), mapping),
                                                        cfg.eval_steps, cfg.eval_envs, pcfg.seed)))
        zero_shot = timed("jumpstart", play, acting)
        floor = jax.jit(lambda: policy_return(env, lambda o, k: jax.random.randint(k, o.shape[:1], 0, env.num_actions),
                                              cfg.eval_steps, cfg.eval_envs, pcfg.seed))()
        out["jumpstart"] = float(jnp.nanmean(zero_shot) - floor)

    if "early_r" in only:
        early = early_r(source, env, pcfg, scratch_arms)
        out |= {k: v for k, v in early.items() if not k.endswith("seconds")}
        seconds["early_r"] = early["early_seconds"]["transfer"] + early["early_seconds"]["scratch"] * early[
            "early_scratch_trained"]
        compile_seconds["early_r"] = early["early_compile_seconds"]
        out["early_seconds"] = early["early_seconds"]
    return out | {"layer": layer, "seconds": seconds, "compile_seconds": compile_seconds,
                  "transitions": int(steps * cfg.num_envs)}


def _compile(source: Source, cfg: TrainConfig, env: envs.Env, freeze, layer: str, pcfg: PredictConfig):
    """The jitted trainability, gradient agreement, feature and probe passes, batched over the source's seeds.
    The data are arguments, not constants (XLA would fold them at length), so one compilation serves every
    target of the same action count."""
    @jax.jit
    def train(transferred, fresh, fit, test):
        probes = [make_probe(cfg, env, fit, test, f, pcfg.seed) for f in (freeze, None)]
        return jax.vmap(lambda t, f: trainability(*probes, t, f, pcfg.sgd_steps))(transferred, fresh)

    @jax.jit
    def agree(transferred, fresh, fit, test):  # both on the layers the transfer trains, as grad_norm
        probe = make_probe(cfg, env, fit, test, freeze, pcfg.seed, pcfg.agreement_batch_size)
        return jax.vmap(lambda t, f: grad_agreement(probe, t, pcfg.agreement_batches)
                        - grad_agreement(probe, f, pcfg.agreement_batches))(transferred, fresh)

    net = _net(source.cfg, source.env.num_actions)

    def feature_stats(params, obs):
        a = features(net, params, obs, layer)
        return dormant_fraction(a, pcfg.dormant_tau), srank(a.reshape(len(a), -1), pcfg.rank_delta)

    def probes_r2(params, obs, y, w):  # rewards and returns on the rows whose return is known (episode ends)
        x = [features(net, params, o, layer).reshape(len(o), -1) for o in obs]
        return ridge_r2(x[0], y[0], w[0], x[1], y[1], w[1], pcfg.penalties)

    return (train, agree, jax.jit(jax.vmap(feature_stats, (0, None))),
            jax.jit(jax.vmap(probes_r2, (0, None, None, None))))
