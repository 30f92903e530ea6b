"""Aggregate env steps/s of DQN on Catch ("grid") vs the number of seeds, per execution strategy.

For S seeds: "vmap" runs all S agents as one batched program; "sequential" runs them one after
another (``lax.map`` over one-seed slices) inside the same compiled epoch. Both again on one host
device per core (a subprocess; the CLI's default on a CPU: each device runs its own block of seeds, no
cross-device traffic), the rollout alone (no learning) to split where the time goes, and the
update's FLOP/s against this machine's f32 matmul roofline. Compile time is reported apart from the
steady state.

    python benchmarks/seed_scaling.py                # S = 1, 4, 16, 64, 256
    python benchmarks/seed_scaling.py --seeds 1 4    # a quick look
    python benchmarks/seed_scaling.py --seeds 64 --one-device --pairs 2 --set env=minatar/Breakout network=mlp \
        num_envs=4 --out benchmarks/results/seed_scaling_mlp.json   # another workload, vmap vs sequential only
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from jaxfer import agents, backend, config, envs, mesh
from jaxfer.code_path import CodePath
from jaxfer.replay import uniform
from jaxfer.runtime import files, seed_axis
from jaxfer.runtime.run import environment_info

RESULTS = Path(__file__).parent / "results"
BASE = ["epoch_steps=1024", "buffer_size=2000", "learning_starts=0", "eval_envs=1", "eval_steps=1", "total_steps=1024"]


def matmul_roofline(n: int = 2048, reps: int = 10) -> float:
    """Practical f32 FLOP/s of this device: a large square matmul."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    start = time.perf_counter()
    for _ in range(reps):
        out = f(a)
    out.block_until_ready()
    return 2 * n**3 * reps / (time.perf_counter() - start)


def measure(num_seeds: int, strategy: str, extra: list[str], epochs: int) -> dict:
    cfg = config.load(None, BASE + extra + [f"seeds={num_seeds}", f"strategy={strategy}"])
    trainer = agents.make_trainer(cfg, envs.make(cfg.env, cfg.obs))
    state = trainer.init(mesh.seed_keys(0, num_seeds))
    fn, compile_s = seed_axis.compile_trainer(trainer, state, strategy)
    state, m = fn(state)  # warm-up epoch
    jax.block_until_ready(m)
    start = time.perf_counter()
    for _ in range(epochs):
        state, m = fn(state)
    jax.block_until_ready(m)
    seconds = time.perf_counter() - start
    steps = num_seeds * cfg.epoch_steps * epochs
    updates_per_s = steps / cfg.num_envs / seconds if cfg.learning_starts == 0 else 0.0
    return {"seeds": num_seeds, "strategy": strategy, "devices": jax.device_count(), "compile_s": round(compile_s, 2),
            "env_steps_per_s": round(steps / seconds, 1), "updates_per_s": round(updates_per_s, 1),
            "flops_per_s": updates_per_s * update_flops(cfg), "seconds": round(seconds, 2)}


def update_flops(cfg) -> float:
    """XLA's FLOP count of one gradient of the TD loss (forward + backward), per agent."""
    env = envs.make(cfg.env, cfg.obs)
    obs = jnp.zeros((cfg.batch_size, *env.obs_shape), env.obs_dtype)
    batch = uniform.Transition(obs, jnp.zeros(cfg.batch_size, jnp.int32), jnp.zeros(cfg.batch_size),
                                  jnp.zeros(cfg.batch_size), obs + 1)
    algo = agents.ALGORITHMS[cfg.agent](cfg, env.num_actions, CodePath.from_config(cfg))
    params, target = (algo.init_params(jax.random.PRNGKey(i), obs[:1]) for i in (0, 1))
    # distinct target params and next obs: with equal ones XLA shares the forwards and counts less
    grad = jax.jit(jax.grad(lambda p: algo.loss(p, target, batch)))
    return grad.lower(params).compile().cost_analysis().get("flops", float("nan"))


def sharded_subprocess(num_seeds: int, strategy: str, devices: int, extra: list[str], epochs: int) -> dict:
    """``strategy`` on ``devices`` forced host devices, one per core here (XLA must see the flag before import)."""
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import seed_scaling as b;"
            f"print(json.dumps(b.measure({num_seeds}, {strategy!r}, {extra!r}, {epochs})))")
    env = os.environ | {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"strategy": f"{strategy}_{devices}dev"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    p.add_argument("--epochs", type=int, default=2, help="timed epochs of 1024 env steps per seed")
    p.add_argument("--out", type=Path, default=RESULTS / "seed_scaling.json")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides of every row")
    p.add_argument("--one-device", action="store_true", help="vmap and sequential on one device only")
    p.add_argument("--pairs", type=int, default=1, help="vmap / sequential readings, alternated (default 1)")
    args = p.parse_args()
    cfg = config.load(None, BASE + args.set)

    roofline = matmul_roofline()
    rows = []
    for s in args.seeds:
        for strategy in ("vmap", "sequential") * args.pairs:
            rows.append(measure(s, strategy, args.set, args.epochs))
            print(json.dumps(rows[-1]), flush=True)
        if args.one_device:
            continue
        if s > 1 and backend.cores() >= 2:  # one device per core, the CLI's default on a CPU; odd counts are padded
            for strategy in ("vmap", "sequential"):
                rows.append(sharded_subprocess(s, strategy, min(s, backend.cores()), args.set, args.epochs))
                print(json.dumps(rows[-1]), flush=True)
        # Where the time goes: the same loop with learning switched off (acting + env + replay writes).
        rows.append(measure(s, "sequential", args.set + ["learning_starts=1000000000"], args.epochs)
                    | {"strategy": "rollout_only"})
        print(json.dumps(rows[-1]), flush=True)
    for r in rows:
        r["roofline_fraction"] = round(r.pop("flops_per_s") / roofline, 4)
    single = next((r["env_steps_per_s"] for r in rows if r["seeds"] == 1 and r["strategy"] == "vmap"), None)
    speedups = {}
    for r in rows:  # against the sequential reading of the same pair (the first at its seed count otherwise)
        if r["strategy"] != "sequential":
            later = [q for q in rows[rows.index(r):] if q["seeds"] == r["seeds"] and q["strategy"] == "sequential"]
            seq = (later or [q for q in rows if q["seeds"] == r["seeds"] and q["strategy"] == "sequential"])[0]
            key = f"{r['strategy']}@{r['seeds']}" + (f"#{rows.index(r) // 2}" if args.pairs > 1 else "")
            speedups[key] = {"vs_sequential": round(r["env_steps_per_s"] / seq["env_steps_per_s"], 2)}
            if single is not None:
                speedups[key]["vs_one_seed"] = round(r["env_steps_per_s"] / single, 2)
    files.write_json(args.out, {"benchmark": "seed_scaling", "env": cfg.env, "obs": cfg.obs, "network": cfg.network,
                             "base_overrides": BASE + args.set, **environment_info(),
                             "matmul_f32_flops_per_s": roofline,
                             "rows": rows, "speedups": speedups})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
