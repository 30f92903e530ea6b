"""Device check for an accelerator: how far jaxfer's seed axis scales on one device, and how fast it runs.

Measures, each row with its compile seconds apart from the steady rate (one warm-up epoch, then timed ones):
1. Catch DQN (the embedded default config) at 1, 4, 16, ..., 4096 seeds, up to the largest that fits;
2. Atari DQN (configs/atari_dqn.yaml), A2C (configs/atari_a2c_ea3c.yaml) and A2C with SB3's defaults
   (Nature CNN, 5-step returns, RMSProp) at 1, 4, 16, 64 seeds, learning from step 0;
3. DPTL's batched Grad-CAM + local threshold + SSIM on 10k frames (frames/s);
4. conv_impl "gemm" against "xla" ("auto" picks one per backend) for Catch DQN with the Nature CNN on
   84x84 pixels at 64 seeds.
A seed count "does not fit" when jaxfer's memory checks refuse it (ConfigError: the state's size, checked
for every count up front, or the compiled epoch's working memory): it is recorded and no larger count is
tried. A global time budget is checked before each measurement (a ladder also stops when its next row is
predicted to overrun its share); whatever it leaves out is recorded with the reason.
Compile seconds include loading from a persistent compilation cache where one is set (JAX_COMPILATION_CACHE_DIR,
or jaxfer's own with --tiny); the JSON names it.

    python benchmarks/accelerator.py           # on the accelerator machine, < 8 min: results/accelerator_gpu.json
    python benchmarks/accelerator.py --tiny    # the CPU smoke version (the test suite runs it), < 1 min
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from jaxfer import agents, config, envs
from jaxfer.config import ConfigError
from jaxfer.dptl import gradcam, similarity
from jaxfer.networks.q_nets import make_network
from jaxfer.runtime import backend, budget, files, seeds
from jaxfer.runtime.code_path import CodePath
from jaxfer.runtime.run import environment_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DQN_YAML, A2C_YAML = ROOT / "configs/atari_dqn.yaml", ROOT / "configs/atari_a2c_ea3c.yaml"
A2C_NATURE = ["obs=nature", "network=nature_ac", "core=dense", "n_steps=5", "optimizer=rmsprop", "lr=0.0007"]


def short(epoch_steps: int) -> list[str]:
    """One epoch of ``epoch_steps`` per seed, learning from step 0 (updates in every timed epoch, and
    one compiled variant), evaluation cut to one step."""
    return ["learning_starts=0", "eval_envs=1", "eval_steps=1", f"epoch_steps={epoch_steps}",
            f"total_steps={epoch_steps}"]


def plan(tiny: bool) -> dict:
    """What to measure: each ladder's config, overrides (all but seeds), seed counts and cumulative share
    of the budget (a ladder that stops early leaves its time to the next); the conv_impl comparison's
    overrides; the DPTL frames. --tiny: small epochs, one or two seeds, 2 Atari envs and a small replay."""
    atari = ["num_envs=2", "buffer_size=64"] if tiny else []
    few = [1] if tiny else [1, 4, 16, 64]
    ladders = {
        "catch_dqn": {"config": None, "overrides": short(64 if tiny else 1024), "share": 0.4,
                      "seeds": [1, 2] if tiny else [1, 4, 16, 64, 256, 1024, 4096]},
        "atari_dqn": {"config": DQN_YAML, "overrides": short(16 if tiny else 400) + atari, "seeds": few,
                      "share": 0.55},
        "atari_a2c": {"config": A2C_YAML, "overrides": short(640) + atari, "seeds": few, "share": 0.7},
        "atari_a2c_nature": {"config": A2C_YAML, "overrides": short(40 if tiny else 640) + atari + A2C_NATURE,
                             "seeds": few, "share": 0.8},
    }
    left_out = []
    if tiny:
        del ladders["atari_a2c"]
        left_out.append({"what": "atari_a2c", "why": "not in --tiny: its LSTM network compiles slowest on XLA CPU"})
    # tiny: the Catch grid network, whose gemm variant is catch_dqn's seeds=1 program (a compilation cache hit)
    conv = short(64) + ["seeds=1"] if tiny else short(256) + ["obs=pixels84", "network=nature_cnn",
                                                               "buffer_size=2000", "seeds=64"]
    return {"ladders": ladders, "conv": conv, "dptl_frames": 200 if tiny else 10_000, "left_out": left_out}


class Clock:
    """The global time budget. A measurement already running is never cut short, so each one is
    allowed to start only while its predicted duration fits in what is left of its share."""

    def __init__(self, budget_s: float):
        self.start, self.budget_s = time.perf_counter(), budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def refuse(self, share: float, predicted_s: float) -> str | None:
        """Why a measurement may not start before ``share`` x the budget has passed; None if it may."""
        left = share * self.budget_s - self.elapsed()
        if left <= 0:
            return f"time budget spent ({self.elapsed():.0f} s, this part may run until {share * self.budget_s:.0f} s)"
        if predicted_s > left:
            return f"predicted to take {predicted_s:.0f} s, only {left:.0f} s of the budget left for it"
        return None


def attempt(what: str, fn, clock: Clock, skipped: list, share: float = 1.0, predicted_s: float = 0.0):
    """``fn()``, or None with the reason in ``skipped``: over budget, does not fit, or failed."""
    why = clock.refuse(share, predicted_s)
    if why is None:
        try:
            return fn()
        except ConfigError as e:
            why = f"refused: {e}"  # the memory checks: it does not fit
        except Exception as e:  # on a borrowed device one failure must not cost every later row
            why = f"failed: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
        finally:
            gc.collect()  # the last run's device buffers go before the next one's memory check
    skipped.append({"what": what, "why": why})
    print(json.dumps({"skipped": what, "why": why}), flush=True)
    return None


def timed_epochs(cfg: config.TrainConfig, epochs: int) -> dict:
    """The run's memory check (as jaxfer.runtime.run does), state init, compile, one warm-up epoch, ``epochs``
    timed ones. init_s holds the init's own compilation and the envs' creation."""
    start = time.perf_counter()
    env = envs.make(cfg.env, cfg.obs)
    agent = agents.make_agent(cfg, env)
    needs = budget.estimate(agent, env, cfg.num_envs, cfg.seeds)
    budget.check(needs)
    trainer = agents.make_train(cfg, env, agent=agent)
    state = jax.block_until_ready(trainer.init(seeds.seed_keys(cfg.seed, cfg.seeds)))
    init_s = time.perf_counter() - start
    epoch, _ = seeds.compile_over_seeds(trainer.epoch, state, cfg.strategy, sliceable=trainer.pool.checkpointable,
                                        phase=trainer.phase, path=trainer.path)
    tick = time.perf_counter()
    state, metrics = epoch(state)
    jax.block_until_ready(metrics)
    warmup_s, tick = time.perf_counter() - tick, time.perf_counter()
    for _ in range(epochs):
        state, metrics = epoch(state)
    seeds.fetch(metrics, cfg.seeds)
    steady_s = time.perf_counter() - tick
    strategy = seeds.resolve(cfg.strategy, trainer.num_seeds, trainer.path) if trainer.pool.checkpointable else "vmap"
    return {"seeds": cfg.seeds, "strategy": strategy, "state_gib_per_device": round(needs["per_device"] / 2**30, 3),
            "init_s": round(init_s, 2), "compile_s": round(epoch.compile_seconds, 2),
            "warmup_epoch_s": round(warmup_s, 2),
            "env_steps_per_s": round(cfg.seeds * cfg.epoch_steps * epochs / steady_s, 1),
            "steady_s": round(steady_s, 2), "wall_s": round(time.perf_counter() - start, 2)}


def predict(rows: list[dict], num_seeds: int) -> float:
    """Seconds of the next row: the last one's compile again, and the rest scaled by the seed count."""
    if not rows:
        return 0.0
    last = rows[-1]
    return last["compile_s"] + (last["wall_s"] - last["compile_s"]) * num_seeds / last["seeds"]


def fitting(name: str, spec: dict, skipped: list) -> list[int]:
    """The ladder's seed counts whose state passes jaxfer's memory check (shapes only, nothing allocated);
    the first that does not is recorded. Checked up front, so that the largest count that fits is known
    even where the budget stops the ladder below it."""
    for i, s in enumerate(spec["seeds"]):
        cfg = config.load(spec["config"], spec["overrides"] + [f"seeds={s}"])
        env = envs.make(cfg.env, cfg.obs)
        try:
            budget.check(budget.estimate(agents.make_agent(cfg, env), env, cfg.num_envs, s))
        except ConfigError as e:
            skipped.append({"what": f"{name} seeds={spec['seeds'][i:]}", "why": f"refused: {e}"})
            print(json.dumps({"skipped": skipped[-1]["what"], "why": skipped[-1]["why"]}), flush=True)
            return spec["seeds"][:i]
    return spec["seeds"]


def ladder(name: str, spec: dict, epochs: int, clock: Clock, skipped: list) -> dict:
    """Rows at growing seed counts, up to the first that does not fit in memory or in the budget."""
    rows, counts = [], fitting(name, spec, skipped)
    for i, s in enumerate(counts):
        cfg = config.load(spec["config"], spec["overrides"] + [f"seeds={s}"])
        row = attempt(f"{name} seeds={counts[i:]}", lambda: timed_epochs(cfg, epochs), clock, skipped, spec["share"],
                      predict(rows, s))
        if row is None:
            break
        rows.append(row)
        print(json.dumps({name: row}), flush=True)
    return {"config": str(spec["config"] or "embedded default"), "overrides": spec["overrides"], "rows": rows,
            "largest_seeds_run": max((r["seeds"] for r in rows), default=None),
            "largest_seeds_within_memory_check": counts[-1] if counts else None}


def dptl_rate(num_frames: int) -> dict:
    """Frames/s of DPTL's batched pipeline (Grad-CAM of a Nature CNN, local threshold, SSIM), as
    benchmarks/dptl_throughput.py times it, without its per-frame scikit-image reference loop."""
    net = make_network("nature_cnn", 6)
    obs = jax.random.randint(jax.random.PRNGKey(0), (num_frames, 84, 84, 4), 0, 256).astype(jnp.uint8)
    params = net.init(jax.random.PRNGKey(1), obs[:1])
    frames = obs[..., -1].astype(jnp.float32) / 255.0
    start = time.perf_counter()
    fn = jax.jit(lambda o, f: similarity.cam_mask_ssim(gradcam.cams(net, params, o), f)).lower(obs, frames).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(fn(obs, frames))
    start = time.perf_counter()
    jax.block_until_ready(fn(obs, frames))
    return {"frames": num_frames, "compile_s": round(compile_s, 2),
            "frames_per_s": round(num_frames / (time.perf_counter() - start), 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="the CPU smoke version: seeds 1-2, tiny epochs, 200 frames")
    p.add_argument("--budget-s", type=float, default=420.0, help="no measurement starts after this many seconds")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up epoch")
    p.add_argument("--out", type=Path, help="default: benchmarks/results/accelerator_<platform>[_tiny].json")
    args = p.parse_args()
    if args.tiny:  # a smoke test: reruns may load programs from jaxfer's compilation cache (as its CLI does)
        backend.enable_compilation_cache()
    todo = plan(args.tiny)
    clock, skipped = Clock(args.budget_s), list(todo["left_out"])
    platform = jax.devices()[0].platform
    out = args.out or RESULTS / f"accelerator_{platform}{'_tiny' if args.tiny else ''}.json"

    result = {name: ladder(name, spec, args.epochs, clock, skipped) for name, spec in todo["ladders"].items()}
    conv = {"auto_means": CodePath.of().conv_impl, "overrides": todo["conv"]}
    for impl in ("gemm", "xla"):
        cfg = config.load(None, todo["conv"] + [f"conv_impl={impl}"])
        conv[impl] = attempt(f"conv_impl={impl}", lambda: timed_epochs(cfg, args.epochs), clock, skipped, 0.9)
        if conv[impl] is not None:
            print(json.dumps({f"conv_impl={impl}": conv[impl]}), flush=True)
    result["conv_impl"] = conv
    result["dptl"] = attempt("dptl", lambda: dptl_rate(todo["dptl_frames"]), clock, skipped)
    if result["dptl"] is not None:
        print(json.dumps({"dptl": result["dptl"]}), flush=True)

    info = environment_info()
    files.write_json(out, {"benchmark": "accelerator", "device_name": f"{platform}: {info['device']['kind']}",
                        **info, "tiny": args.tiny, "budget_s": args.budget_s, "timed_epochs": args.epochs,
                        "compilation_cache": jax.config.jax_compilation_cache_dir, **result, "skipped": skipped,
                        "wall_s": round(clock.elapsed(), 1)})
    print(f"wrote {out} in {clock.elapsed():.0f} s; skipped: {len(skipped)}")
    sys.exit(1 if any(s["why"].startswith("failed") for s in skipped) else 0)


if __name__ == "__main__":
    main()
