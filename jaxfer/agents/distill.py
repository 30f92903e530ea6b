"""Policy distillation (Rusu et al. 2016, as used by Shachaf et al.): a student Q-network learns
the teacher's softened action distribution, KL( softmax(q_T / tau) || softmax(q_S) ).

The student's logits are not divided by tau. Schedules: "fixed" (tau 0.1, each sample once) and
"varying" (five passes with tau 0.1, 0.2, ..., 0.5: each sample five times). The distilled student is
a parameter tree like any other, so it can be a transfer source (``jaxfer.transfer.sweep``'s ``distill`` key).
Everything here is pure, so ``student`` vmaps over seeds.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jaxfer.envs import Env

SCHEDULES = {"fixed": (0.1,), "varying": (0.1, 0.2, 0.3, 0.4, 0.5)}


def kl_loss(q_teacher: jax.Array, q_student: jax.Array, tau: float) -> jax.Array:
    """Mean over the batch of KL(softmax(q_T / tau) || softmax(q_S))."""
    log_p = jax.nn.log_softmax(q_teacher / tau)
    return jnp.mean(jnp.sum(jnp.exp(log_p) * (log_p - jax.nn.log_softmax(q_student)), axis=-1))


def collect(q_values: Callable, params, env: Env, num_states: int, key: jax.Array, num_envs: int = 16,
            epsilon: float = 0.05) -> tuple[jax.Array, jax.Array]:
    """(states, teacher Q-values) from ``num_states`` steps of the teacher's epsilon-greedy play."""
    k_reset, key = jax.random.split(key)
    env_state, obs = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs))

    def step(carry, k):
        env_state, obs = carry
        k_explore, k_random, k_env = jax.random.split(k, 3)
        q = q_values(params, obs)
        random = jax.random.randint(k_random, (num_envs,), 0, env.num_actions)
        action = jnp.where(jax.random.uniform(k_explore, (num_envs,)) < epsilon, random, q.argmax(-1))
        env_state, next_obs, *_ = jax.vmap(env.step)(env_state, action, jax.random.split(k_env, num_envs))
        return (env_state, next_obs), (obs, q)

    steps = -(-num_states // num_envs)
    _, (states, qs) = jax.lax.scan(step, (env_state, obs), jax.random.split(key, steps))
    flat = lambda x: x.reshape(-1, *x.shape[2:])[:num_states]  # noqa: E731
    return flat(states), flat(qs)


def distill(q_values: Callable, student_params, states: jax.Array, teacher_q: jax.Array, key: jax.Array,
            schedule: str = "fixed", batch_size: int = 32, lr: float = 1e-3):
    """Train the student on (states, teacher_q); returns (params, per-batch losses)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown distillation schedule '{schedule}'; known: {', '.join(SCHEDULES)}")
    tx = optax.adam(lr)
    num_batches = states.shape[0] // batch_size

    def one_pass(carry, inputs):
        params, opt_state = carry
        tau, k = inputs
        order = jax.random.permutation(k, states.shape[0])[: num_batches * batch_size].reshape(num_batches, batch_size)

        def update(carry, idx):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(lambda p: kl_loss(teacher_q[idx], q_values(p, states[idx]), tau))(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        return jax.lax.scan(update, (params, opt_state), order)

    taus = jnp.array(SCHEDULES[schedule])
    (params, _), losses = jax.jit(lambda c: jax.lax.scan(one_pass, c, (taus, jax.random.split(key, len(taus)))))(
        (student_params, tx.init(student_params)))
    return params, losses.reshape(-1)


HELD_OUT_TAU = 0.1  # the held-out KL is measured against the sharpest (the "fixed") teacher distribution


def student(q_values: Callable, init_params: Callable, teacher, env: Env, key: jax.Array, schedule: str = "fixed",
            num_states: int = 10_000, held_out: int = 1_000, batch_size: int = 32, lr: float = 1e-3,
            epsilon: float = 0.05):
    """One seed's distilled student: a fresh ``init_params(key, obs)`` trained on ``num_states`` teacher
    states. The held-out KL is on another ``held_out`` states from separate teacher episodes, so it
    measures generalisation, not memorisation. Returns (params, {"kl_before", "kl_after", "loss"})."""
    k_init, k_collect, k_held, k_train = jax.random.split(key, 4)
    params = init_params(k_init, jnp.zeros((1, *env.obs_shape), env.obs_dtype))
    states, teacher_q = collect(q_values, teacher, env, num_states, k_collect, epsilon=epsilon)
    held_states, held_q = collect(q_values, teacher, env, held_out, k_held, epsilon=epsilon)
    before = kl_loss(held_q, q_values(params, held_states), HELD_OUT_TAU)
    params, losses = distill(q_values, params, states, teacher_q, k_train, schedule, batch_size, lr)
    after = kl_loss(held_q, q_values(params, held_states), HELD_OUT_TAU)
    return params, {"kl_before": before, "kl_after": after, "loss": losses}
