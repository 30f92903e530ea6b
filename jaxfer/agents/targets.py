"""TD errors and returns as rlax writes them: pure functions of ONE transition (or one trajectory), named
after the maths, that the agents batch with ``jax.vmap``.

``discount_t`` is ``gamma * (1 - done_t)``: a terminal step bootstraps nothing. Every bootstrap target
sits behind ``stop_gradient``, so a loss on the returned error trains only the value it is taken of.
The names follow Sabatelli et al. for the DQV family ("QV-learning": Q regresses on V).
"""
from __future__ import annotations

import chex
import jax


def _check(q_tm1, a_tm1, r_t, discount_t) -> None:
    chex.assert_rank([q_tm1, a_tm1, r_t, discount_t], [1, 0, 0, 0])


def q_learning(q_tm1: jax.Array, a_tm1: jax.Array, r_t: jax.Array, discount_t: jax.Array,
               q_t: jax.Array) -> jax.Array:
    """DQN: r + discount * max_a q_t(a) - q_tm1(a_tm1), with q_t from the target network."""
    _check(q_tm1, a_tm1, r_t, discount_t)
    target = r_t + discount_t * q_t.max()
    return jax.lax.stop_gradient(target) - q_tm1[a_tm1]


def double_q_learning(q_tm1: jax.Array, a_tm1: jax.Array, r_t: jax.Array, discount_t: jax.Array,
                      q_t_value: jax.Array, q_t_selector: jax.Array) -> jax.Array:
    """Double DQN: the action picked by ``q_t_selector`` (online net), valued by ``q_t_value`` (target net)."""
    _check(q_tm1, a_tm1, r_t, discount_t)
    target = r_t + discount_t * q_t_value[q_t_selector.argmax()]
    return jax.lax.stop_gradient(target) - q_tm1[a_tm1]


def qv_learning(q_tm1: jax.Array, a_tm1: jax.Array, r_t: jax.Array, discount_t: jax.Array,
                v_t: jax.Array) -> jax.Array:
    """DQV and DQV-Max's Q: r + discount * V(s') - q_tm1(a_tm1)."""
    _check(q_tm1, a_tm1, r_t, discount_t)
    chex.assert_rank(v_t, 0)
    return jax.lax.stop_gradient(r_t + discount_t * v_t) - q_tm1[a_tm1]


def v_learning(v_tm1: jax.Array, r_t: jax.Array, discount_t: jax.Array, v_t: jax.Array) -> jax.Array:
    """DQV's V: TD(0) on the state value, r + discount * V(s') - V(s)."""
    chex.assert_rank([v_tm1, r_t, discount_t, v_t], 0)
    return jax.lax.stop_gradient(r_t + discount_t * v_t) - v_tm1


def qv_max(v_tm1: jax.Array, r_t: jax.Array, discount_t: jax.Array, q_t: jax.Array) -> jax.Array:
    """DQV-Max's V: r + discount * max_a Q(s', a) - V(s), with Q from the target network."""
    chex.assert_rank([v_tm1, r_t, discount_t, q_t], [0, 0, 0, 1])
    return jax.lax.stop_gradient(r_t + discount_t * q_t.max()) - v_tm1


def discounted_returns(r_t: jax.Array, discount_t: jax.Array, v_T: jax.Array) -> jax.Array:
    """G_t = r_t + discount_t G_{t+1} over one trajectory (T,), bootstrapped with G_T = v_T (A2C's n-step
    returns, n = T - t)."""
    chex.assert_rank([r_t, discount_t, v_T], [1, 1, 0])

    def back(g, x):
        r, d = x
        g = r + d * g
        return g, g

    return jax.lax.scan(back, v_T, (r_t, discount_t), reverse=True)[1]

