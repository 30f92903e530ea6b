"""Where a training run's time goes: XLA's per-op profile of the compiled epoch and the host loop's share.

Builds the run as ``jaxfer train`` does (config + overrides), compiles the epoch, runs one warm-up epoch,
times ``--epochs`` epochs alone (compiled call only), then the host loop's own work after an epoch: the
fetch of the metrics and checkpoint (``mesh.fetch``) and the checkpoint's write (``files.save_tree``, on
the writer thread in a run). One more epoch runs under ``jax.profiler``; its thunks' exclusive times are
grouped by the jaxfer stage their HLO op names point to. Writes ``--out`` (JSON).

    python benchmarks/epoch_profile.py configs/minatar_dqn.yaml network=mlp seeds=1 num_envs=4 \\
        learning_starts=1000 epoch_steps=1000 buffer_size=10000 eval_envs=1 eval_steps=1
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import tempfile
import time
from pathlib import Path

import jax

from jaxfer import agents, config, envs, mesh
from jaxfer.runtime import files, run, seed_axis

RESULTS = Path(__file__).parent / "results"
# (stage, pattern of the HLO op_name): the first match names a thunk's stage
STAGES = [("env step", r"gymnax|minatar|step_env|reset_env|/pool"), ("update: forward and backward", r"jvp\("),
          ("update: Adam", r"cond/branch_1_fun/(add|mul|sqrt|div|sub|pow)|adam|scale_by|apply_updates"),
          ("update: batch sampling", r"randint|gather"), ("target sync", r"select_n"), ("acting", r"argmax")]


def stage(op_name: str, thunk: str) -> str:
    for name, pattern in STAGES:
        if re.search(pattern, op_name):
            return name
    return "other (" + (op_name.split("/")[-1] if op_name else thunk.split(".")[0]) + ")"


def exclusive_us(trace: Path) -> collections.Counter:
    """Each thunk's time minus its nested thunks' (a while or cond holds the ops it runs)."""
    events = [e for e in json.load(gzip.open(trace))["traceEvents"] if e.get("ph") == "X" and "dur" in e]
    by_thread = collections.defaultdict(list)
    for e in events:
        by_thread[(e["pid"], e["tid"])].append(e)
    out = collections.Counter()
    for es in by_thread.values():
        es.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack, child = [], collections.Counter()
        for i, e in enumerate(es):
            while stack and es[stack[-1]]["ts"] + es[stack[-1]]["dur"] <= e["ts"]:
                stack.pop()
            if stack:
                child[stack[-1]] += e["dur"]
            stack.append(i)
        for i, e in enumerate(es):
            if not e["name"].startswith("$") and "ThunkExecutor" not in e["name"]:
                out[e["name"].removeprefix("end: ")] += e["dur"] - child[i]
    return out


def op_names(hlo: str) -> dict:
    """Thunk name -> the jax op_name it came from, read from the compiled HLO's metadata."""
    names = {}
    for line in hlo.splitlines():
        m = re.match(r"\s+(?:ROOT )?%?([\w.\-]+) = .*?op_name=\"([^\"]*)\"", line)
        if m:
            names.setdefault(m.group(1), m.group(2))
    return names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    p.add_argument("--out", type=Path, default=RESULTS / "epoch_profile.json")
    args = p.parse_args()
    cfg = config.load(args.config, args.overrides)
    trainer = agents.make_trainer(cfg, envs.make(cfg.env, cfg.obs))
    state = trainer.init(mesh.seed_keys(cfg.seed, cfg.seeds))
    fn, compile_s = seed_axis.compile_trainer(trainer, state, cfg.strategy)
    state, metrics = fn(state)
    jax.block_until_ready(metrics)
    epoch_s = []
    for _ in range(args.epochs):
        tick = time.perf_counter()
        state, metrics = fn(state)
        jax.block_until_ready((state, metrics))
        epoch_s.append(time.perf_counter() - tick)
    tick = time.perf_counter()
    metrics, snapshot = mesh.fetch((metrics, trainer.checkpoint(state)), cfg.seeds)
    run.metric_rows(0, metrics)
    fetch_s = time.perf_counter() - tick
    with tempfile.TemporaryDirectory() as tmp:
        tick = time.perf_counter()
        files.save_tree(Path(tmp) / "checkpoint.npz", snapshot, epoch=1)
        save_s = time.perf_counter() - tick
        jax.profiler.start_trace(tmp)
        state, metrics = fn(state)
        jax.block_until_ready((state, metrics))
        jax.profiler.stop_trace()
        times = exclusive_us(Path(glob.glob(f"{tmp}/plugins/profile/*/*.trace.json.gz")[0]))
    names = op_names(fn.compiled().as_text())
    stages = collections.Counter()
    for thunk, us in times.items():
        stages[stage(names.get(thunk, ""), thunk)] += us
    total = sum(stages.values())
    median = sorted(epoch_s)[len(epoch_s) // 2]
    files.write_json(args.out, {
        "benchmark": "epoch_profile", "config": args.config, "overrides": args.overrides,
        **run.environment_info(),
        "strategy": fn.strategy, "compile_s": round(compile_s, 2), "epoch_s": [round(x, 4) for x in epoch_s],
        "env_steps_per_s": round(cfg.seeds * cfg.epoch_steps / median, 1),
        "host_loop": {"fetch_s": round(fetch_s, 4), "checkpoint_write_s": round(save_s, 4),
                      "checkpoint_mb": round(sum(x.nbytes for x in jax.tree.leaves(snapshot)) / 1e6, 1),
                      "fetch_share_of_epoch": round(fetch_s / median, 4)},
        "profiled_epoch_stage_shares": {k: round(v / total, 4) for k, v in stages.most_common()},
        "note": "the profiled epoch runs slower than the timed ones (a trace event per thunk); shares, not times"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
