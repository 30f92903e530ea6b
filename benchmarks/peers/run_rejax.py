"""rejax's DQN or PPO, vmapped over seeds as rejax's README does it, timed apart from its compilation.

Run by the rejax side venv's Python (``benchmarks/peers.py`` builds it): ``python run_rejax.py '<json spec>'``.
Prints one JSON line: env steps/s of one call of the compiled ``jit(vmap(algo.train))`` (all seeds, the whole
run: compiled ahead of time, so the call timed is pure execution, as a second call of the jitted function is),
its compile time apart, and the device. Adapted at run time only (nothing of rejax is copied here):

- rejax's DQN passes ``hidden_layer_sizes=(64, 64)`` beside ``agent_kwargs``, so it cannot take another
  size: the Q-network is swapped for rejax's own ``EpsilonGreedyPolicy(DiscreteQNetwork)`` of the given size;
- evaluation (128 episodes after every ``eval_freq`` steps) is replaced by a no-op, as jaxfer's side runs
  one greedy env step per epoch: both time training alone.
"""
from __future__ import annotations

import json
import sys
import time


def make_algo(spec: dict):
    import jax.numpy as jnp
    import rejax
    from flax import linen as nn
    from rejax.networks import DiscreteQNetwork, EpsilonGreedyPolicy

    steps = spec["total_timesteps"]
    common = {"env": spec["env"], "total_timesteps": steps, "eval_freq": steps, "skip_initial_evaluation": True,
              "learning_rate": spec["lr"], "gamma": spec["gamma"], "max_grad_norm": spec.get("max_grad_norm", jnp.inf)}
    if spec["algo"] == "dqn":
        algo = rejax.DQN.create(**common, num_envs=spec["num_envs"], buffer_size=spec["buffer_size"],
                                fill_buffer=spec["learning_starts"], batch_size=spec["batch_size"],
                                target_update_freq=spec["target_update_env_steps"], polyak=0.0,
                                ddqn=spec.get("ddqn", False), num_epochs=1, eps_start=spec["eps_start"],
                                eps_end=spec["eps_end"], exploration_fraction=spec["eps_decay_steps"] / steps,
                                agent_kwargs={"activation": spec["activation"]})
        qnet = EpsilonGreedyPolicy(DiscreteQNetwork)
        net = qnet(hidden_layer_sizes=tuple(spec["hidden"]), action_dim=algo.action_dim,
                   activation=getattr(nn, spec["activation"]))
        algo = algo.replace(agent=net)
    elif spec["algo"] == "ppo":
        algo = rejax.PPO.create(**common, num_envs=spec["num_envs"], num_steps=spec["n_steps"],
                                num_epochs=spec["ppo_epochs"], num_minibatches=spec["minibatches"],
                                gae_lambda=spec["gae_lambda"], clip_eps=spec["clip_eps"], ent_coef=spec["ent_coef"],
                                vf_coef=spec["vf_coef"],
                                agent_kwargs={"activation": spec["activation"], "hidden_layer_sizes": spec["hidden"]})
    else:
        raise SystemExit(f"run_rejax.py: unknown algo {spec['algo']!r} (dqn or ppo)")
    return algo.replace(eval_callback=lambda algo, ts, rng: jnp.zeros(()))


def main() -> None:
    spec = json.loads(sys.argv[1])
    import jax

    algo = make_algo(spec)
    keys = jax.random.split(jax.random.PRNGKey(spec.get("seed", 0)), spec["seeds"])
    start = time.perf_counter()
    train = jax.jit(jax.vmap(algo.train)).lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(train(keys))
    run_s = time.perf_counter() - start
    steps = spec["seeds"] * spec["total_timesteps"]
    dev = jax.devices()[0]
    print(json.dumps({"env_steps_per_s": round(steps / run_s, 1), "compile_s": round(compile_s, 2),
                      "seconds": round(run_s, 2), "env_steps": steps,
                      "device": {"platform": dev.platform, "kind": dev.device_kind, "count": jax.device_count()},
                      "timed": "one call of jit(vmap(algo.train)) compiled ahead of time: every seed's whole run, "
                               "its learning start included"}))


if __name__ == "__main__":
    main()
