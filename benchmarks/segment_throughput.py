"""Throughput of segmentation pre-training on MinAtar Breakout (compile time apart from steady state):
FCN training images/s (S seeds vmapped, Adam, batch 64), and Double DQN training env steps/s of the
FCN-trunk agent (``seg_ddqn``, trunk frozen) vs the same network from scratch and the MinAtar
baseline network, through ``jaxfer.runtime.run.train`` with the config's DQN settings.

    python benchmarks/segment_throughput.py [--seeds 5] [--steps 20000]
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxfer import envs, mesh
from jaxfer.dptl import frames
from jaxfer.runtime import files, run, seed_axis
from jaxfer.segment import config, export, labels
from jaxfer.segment.fcn import FCN
from jaxfer.segment.train import make_trainer

RESULTS = Path(__file__).parent / "results"
CONFIG = Path(__file__).parent.parent / "configs" / "seg_minatar_breakout.yaml"


def fcn_images_per_s(cfg: config.SegmentConfig, num_frames: int, epochs: int) -> dict:
    obs = frames.collect(cfg.env, cfg.obs, num_frames, cfg.frames_seed)
    y = labels.channel_labels(obs)
    trainer = make_trainer(int(y.max()) + 1, obs.shape[1:], cfg.fcn.lr, cfg.fcn.batch_size)
    state = mesh.place(mesh.pad(trainer.init(mesh.seed_keys(0, cfg.fcn.seeds)), cfg.fcn.seeds))
    x, yy = mesh.replicate((obs, y))
    start = time.perf_counter()
    epoch = seed_axis.compile_seed_map(trainer.epoch, state, x, yy, donate=True)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        state, loss = epoch(state, x, yy)
        loss.block_until_ready()
        times.append(time.perf_counter() - start)
    images = cfg.fcn.seeds * (len(x) // cfg.fcn.batch_size) * cfg.fcn.batch_size
    return {"seeds": cfg.fcn.seeds, "frames": num_frames, "batch_size": cfg.fcn.batch_size, "epochs_timed": epochs,
            "compile_seconds": round(compile_s, 2), "images_per_s": round(images * epochs / sum(times), 1),
            "images_per_s_per_epoch": [round(images / t, 1) for t in times]}


def ddqn_steps_per_s(cfg: config.SegmentConfig, steps: int, num_seeds: int) -> dict:
    train = dataclasses.replace(cfg.ddqn.train, seeds=num_seeds, total_steps=steps, epoch_steps=steps // 4,
                                eval_steps=1, learning_starts=min(cfg.ddqn.train.learning_starts, steps // 8))
    fcn_like = jax.tree.map(np.asarray, jax.vmap(lambda k: export_fcn_init(k, train))(mesh.seed_keys(0, num_seeds)))
    fresh = run.init_params(train)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("frozen", "scratch", "baseline"):
            vcfg = dataclasses.replace(train, network=cfg.ddqn.baseline_network) if variant == "baseline" else train
            init, freeze = export.export(fcn_like, fresh, frozen=True) if variant == "frozen" else (None, None)
            done = run.train(vcfg, Path(tmp) / variant, progress=False, init_params=init, freeze=freeze)
            out[variant] = {"network": vcfg.network, "steady_env_steps_per_s": done["steady_env_steps_per_s"],
                            "epochs_timed": done["epochs_timed"], "compile_seconds": done["compile_seconds"]}
    out["frozen_vs_scratch"] = round(out["frozen"]["steady_env_steps_per_s"]
                                     / out["scratch"]["steady_env_steps_per_s"], 3)
    return {"seeds": num_seeds, "env_steps_per_seed": steps, "epoch_steps": train.epoch_steps,
            "num_envs": train.num_envs, "batch_size": train.batch_size, "eval_steps": train.eval_steps} | out


def export_fcn_init(key, train):
    """A fresh FCN's parameters: throughput does not depend on the trunk's values."""
    return FCN(5).init(key, jnp.zeros((1, *envs.make(train.env, train.obs).obs_shape), jnp.uint8))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20_000, help="env steps per seed of each timed DDQN run")
    p.add_argument("--fcn-frames", type=int, default=8_000)
    p.add_argument("--fcn-epochs", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS / "segment_throughput.json")
    args = p.parse_args()
    cfg = config.load(CONFIG)
    result = {"benchmark": "segment_throughput", "config": str(CONFIG.name), **run.environment_info(),
              "fcn_training": fcn_images_per_s(cfg, args.fcn_frames, args.fcn_epochs),
              "ddqn_training": ddqn_steps_per_s(cfg, args.steps, args.seeds)}
    files.write_json(args.out, result)
    print(f"{args.out}: FCN {result['fcn_training']['images_per_s']} images/s; DDQN env steps/s frozen "
          f"{result['ddqn_training']['frozen']['steady_env_steps_per_s']}, scratch "
          f"{result['ddqn_training']['scratch']['steady_env_steps_per_s']}, baseline "
          f"{result['ddqn_training']['baseline']['steady_env_steps_per_s']}")


if __name__ == "__main__":
    main()
