"""The XLA-CPU path's compiler options (``jaxfer.code_path.CPU_COMPILER_OPTIONS``) on and off, in the real epoch.

The options apply to dense-only networks; this compares both arms for conv networks too (why they do not).

Per case (a config and its overrides) the epoch is compiled twice in one process, with the options and
without; after one warm-up epoch each, the two alternate epoch by epoch (``--pairs`` times), so the
machine's drift hits both alike. Compile seconds apart from steady env steps/s; one XLA device.

    python benchmarks/xla_cpu_options.py                    # every case (~10 minutes on 2 cores)
    python benchmarks/xla_cpu_options.py --cases dqn_mlp_8  # one
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import jax

from jaxfer import agents, code_path, config, envs, mesh
from jaxfer.runtime import files, seed_axis
from jaxfer.runtime.run import environment_info

RESULTS = Path(__file__).parent / "results"
# the peers benchmark's MinAtar rows (benchmarks/peers.py): epoch 1 collects up to the learning start
DQN = ["network=mlp", "num_envs=4", "batch_size=32", "lr=0.00025", "buffer_size=10000", "learning_starts=1000",
       "target_update=250", "eps_end=0.1", "eps_decay_steps=100000", "epoch_steps=1000", "eval_envs=1", "eval_steps=1"]
A2C = ["network=mlp_ac", "epoch_steps=10240", "eval_envs=1", "eval_steps=1"]
CASES = {
    "dqn_mlp_1": ("configs/minatar_dqn.yaml", DQN + ["seeds=1"]),
    "dqn_mlp_8": ("configs/minatar_dqn.yaml", DQN + ["seeds=8"]),
    "dqn_mlp_64": ("configs/minatar_dqn.yaml", DQN + ["seeds=64"]),
    "a2c_mlp_ac_1": ("configs/minatar_a2c.yaml", A2C + ["seeds=1"]),
    "a2c_mlp_ac_8": ("configs/minatar_a2c.yaml", A2C + ["seeds=8"]),
    "a2c_mlp_ac_64": ("configs/minatar_a2c.yaml", A2C + ["seeds=64", "epoch_steps=1280"]),
    "dqn_catch_cnn_8": ("configs/catch_dqn.yaml", ["seeds=8", "eval_envs=1", "eval_steps=1"]),
    "dqn_minatar_conv_8": ("configs/minatar_dqn.yaml", ["seeds=8", "num_envs=4", "learning_starts=1000",
                                                        "epoch_steps=1000", "eval_envs=1", "eval_steps=1"]),
}


@dataclasses.dataclass(frozen=True)
class WithOptions(code_path.CodePath):
    """The run's code path compiling with ``options`` whatever its network: the benchmark's two arms."""

    options: tuple = ()

    def compiler_options(self, convs: bool) -> dict:
        return dict(self.options)


def measure(cfg_path: str, overrides: list[str], pairs: int) -> dict:
    cfg = config.load(cfg_path, overrides)
    trainer = agents.make_trainer(cfg, envs.make(cfg.env, cfg.obs))
    if not trainer.path.cpu:
        raise SystemExit("xla_cpu_options.py: the run is not on the XLA-CPU path (tuning); nothing to compare")
    run_path = dataclasses.asdict(trainer.path)
    arms = {"on": WithOptions(**run_path, options=tuple(code_path.CPU_COMPILER_OPTIONS.items())),
            "off": WithOptions(**run_path)}
    epochs, states, compile_s = {}, {}, {}
    for arm, path in arms.items():
        state = trainer.init(mesh.seed_keys(cfg.seed, cfg.seeds))
        epochs[arm], compile_s[arm] = seed_axis.compile_trainer(trainer._replace(path=path), state, cfg.strategy)
        states[arm], metrics = epochs[arm](state)  # warm-up: the epoch that holds the learning start
        jax.block_until_ready(metrics)
    rates = {arm: [] for arm in arms}
    for _ in range(pairs):
        for arm in arms:
            tick = time.perf_counter()
            states[arm], metrics = epochs[arm](states[arm])
            jax.block_until_ready((states[arm], metrics))
            rates[arm].append(round(cfg.seeds * cfg.epoch_steps / (time.perf_counter() - tick), 1))
    median = {arm: statistics.median(r) for arm, r in rates.items()}
    return {"config": cfg_path, "overrides": overrides, "strategy": epochs["on"].strategy,
            "compile_s": {arm: round(s, 2) for arm, s in compile_s.items()},
            "env_steps_per_s": rates, "median_env_steps_per_s": median,
            "on_over_off": round(median["on"] / median["off"], 3),
            "the_run_compiles_with": trainer.path.compiler_options(seed_axis.has_convs(states["on"].agent.params))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    p.add_argument("--pairs", type=int, default=3, help="alternated (on, off) epochs per case, after a warm-up each")
    p.add_argument("--out", type=Path, default=RESULTS / "xla_cpu_options.json")
    args = p.parse_args()
    result = {"benchmark": "xla_cpu_options", "options": code_path.CPU_COMPILER_OPTIONS, **environment_info(),
              "pairs": args.pairs, "cases": {}}
    for name in args.cases:
        result["cases"][name] = row = measure(*CASES[name], args.pairs)
        print(f"{name}: on {row['median_env_steps_per_s']['on']:,.0f} / off {row['median_env_steps_per_s']['off']:,.0f}"
              f" env steps/s = {row['on_over_off']}x (compile {row['compile_s']['on']} / {row['compile_s']['off']} s)",
              flush=True)
        files.write_json(args.out, result)  # finished cases survive a stop
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
